// The gateway, built from its parts with everything injected (main.ts reads the environment and
// files, listens on the admin port and handles signals; tests build this directly). The listener
// hands clients to the sessions and CancelRequests to cancel forwarding.
// Map: docs/architecture.md, "Inside the gateway".
import { randomBytes } from 'node:crypto';
import type { GatewayConfig } from './config/index.ts';
import { startListener } from './edge/index.ts';
import { TlsContexts, type CertificateInput } from './edge/index.ts';
import { Admission } from './session/index.ts';
import { Sessions, type SessionInfo } from './session/index.ts';
import { ClientCertificateStore, scramMockKey } from './backend/index.ts';
import { BackendTls } from './backend/index.ts';
import type { BackendTlsDefaults } from './backend/index.ts';
import { CancelForwarding } from './cancel/index.ts';
import { CancelRegistry, type CancelKeyStore } from './cancel/index.ts';
import type { TenantDirectory } from './tenants/index.ts';
import type { FleetLimits } from './limits/index.ts';
import type { Logger } from './telemetry/index.ts';
import type { GatewayMetrics, ProtocolTraceOptions } from './telemetry/index.ts';

export type GatewaySettings = Pick<
  GatewayConfig,
  | 'listen'
  | 'sniSuffixes'
  | 'allowPlaintext'
  | 'handshakeTimeoutMs'
  | 'maxPendingConnections'
  | 'authTimeoutMs'
  | 'backendConnectTimeoutMs'
  | 'secretsDir'
> &
  // PROXY protocol on the Postgres port (`off` when absent), and the per-address limits (none when absent).
  Partial<
    Pick<GatewayConfig, 'proxyProtocol' | 'proxyTrustedCidrs' | 'maxPendingPerAddress' | 'connectsPerSecondPerAddress' | 'wakeTimeoutMs'>
  > & {
    /** The client leg's TLS policy; absent: TLS 1.2 at least, Node's ciphers. */
    readonly tlsPolicy?: GatewayConfig['tlsPolicy'];
    /** The backend leg's oldest TLS version unless a tenant sets its own; absent: TLS 1.2. */
    readonly backendTlsMinVersion?: GatewayConfig['backend']['minVersion'];
  };

/** GATEWAY_WAKE_TIMEOUT_MS's default, for a gateway built without it. */
const DEFAULT_WAKE_TIMEOUT_MS = 30_000;

export interface GatewayOptions {
  readonly settings: GatewaySettings;
  /** The edge certificates as PEM text, one per suffix group (empty only with allowPlaintext). */
  readonly certificates: readonly CertificateInput[];
  readonly backendDefaults: Partial<BackendTlsDefaults>;
  readonly tenants: TenantDirectory;
  readonly logger: Logger;
  readonly metrics: GatewayMetrics;
  readonly reusePort?: boolean;
  /** Where cancel keys live; default: this process's memory. */
  readonly cancelStore?: CancelKeyStore;
  /** Tenants' connection caps and rates across the fleet; default: enforced by this process alone. */
  readonly fleetLimits?: FleetLimits;
}

export interface Gateway {
  readonly address: { host: string; port: number };
  /** Sessions spliced and open. */
  readonly activeSessions: number;
  /** The live sessions, of one tenant or all (the admin port's GET /sessions). */
  listSessions(tenantId?: string): SessionInfo[];
  /** Ends one session, or a tenant's, with FATAL 57P01 at a message boundary; returns how many. */
  terminateSessions(which: { readonly id: string } | { readonly tenantId: string }): number;
  /** Traces a live session's messages until `options.until`; returns how many had that id (0 or 1). */
  traceSession(id: string, options: ProtocolTraceOptions): number;
  /** Traces the tenant's next `connections` connections (of this process) until `options.until`. */
  traceTenant(tenantId: string, connections: number, options: ProtocolTraceOptions): void;
  /** New certificates (SIGHUP): new connections use them; open sessions keep theirs. */
  reloadCertificates(certificates: readonly CertificateInput[]): void;
  /** Forget cached tenant client certificates so the next connection reads them again. */
  reloadSecrets(): void;
  /** New default backend CA and client certificate for new backend connections; throws (keeping the old) when they do not load. */
  reloadBackendDefaults(defaults: Partial<BackendTlsDefaults>): void;
  /**
   * Stops accepting, then ends sessions: idle ones (last ReadyForQuery 'I') at once with FATAL
   * 57P01 at a message boundary, others as they become idle; at the deadline the rest are closed.
   */
  drain(deadlineMs: number): Promise<void>;
  close(): Promise<void>;
}

export async function createGateway(options: GatewayOptions): Promise<Gateway> {
  const { settings, logger, metrics, tenants } = options;
  const contexts = options.certificates.length > 0 ? new TlsContexts(options.certificates, settings.tlsPolicy) : undefined;
  const backendTls = new BackendTls(
    options.backendDefaults,
    new ClientCertificateStore(settings.secretsDir),
    settings.backendTlsMinVersion,
  );
  const registry = new CancelRegistry({ metrics, ...(options.cancelStore === undefined ? {} : { store: options.cancelStore }) });
  const cancels = new CancelForwarding({ registry, tenants, backendTls, connectTimeoutMs: settings.backendConnectTimeoutMs });
  const sessions = new Sessions({
    tenants,
    admission: new Admission(options.fleetLimits === undefined ? {} : { fleet: options.fleetLimits }),
    cancels: registry,
    cancelBackend: (target) => cancels.cancel(target),
    backendTls,
    // Without an edge key (plaintext development only) the mock salts cannot be fleet-stable.
    mockKey: options.certificates[0] === undefined ? randomBytes(32) : scramMockKey(options.certificates[0].keyPem),
    metrics,
    timeouts: {
      authMs: settings.authTimeoutMs,
      backendConnectMs: settings.backendConnectTimeoutMs,
      wakeMs: settings.wakeTimeoutMs ?? DEFAULT_WAKE_TIMEOUT_MS,
    },
  });
  const listener = await startListener({ config: settings, contexts, logger, metrics, reusePort: options.reusePort, sessions, cancels });
  return {
    address: listener.address,
    get activeSessions() {
      return sessions.active;
    },
    listSessions: (tenantId) => sessions.list(tenantId),
    terminateSessions: (which) => sessions.terminate(which),
    traceSession: (id, traceOptions) => sessions.traceSession(id, traceOptions),
    traceTenant: (tenantId, connections, traceOptions) => sessions.traceTenant(tenantId, connections, traceOptions),
    reloadCertificates: (certificates) => contexts?.reload(certificates),
    reloadSecrets: () => backendTls.reloadClientCertificates(),
    reloadBackendDefaults: (defaults) => backendTls.reloadDefaults(defaults),
    drain: async (deadlineMs) => {
      await listener.close();
      await sessions.drain(deadlineMs);
    },
    close: async () => {
      sessions.refuseNew();
      await listener.close();
      await sessions.close();
      await Promise.all([registry.close(), tenants.close(), options.fleetLimits?.close()]);
    },
  };
}
