// The gateway, built from its parts with everything injected (main.ts reads the environment and
// files, listens on the admin port and handles signals; tests build this directly).
import { randomBytes } from 'node:crypto';
import { Admission } from './session/admission.ts';
import { BackendTlsContexts, TlsSessionCache, type BackendTlsDefaults } from './backend/tls.ts';
import { CancelRegistry, type CancelKeyStore, type CancelTarget } from './cancel/registry.ts';
import type { GatewayConfig } from './config/config.ts';
import { startListener, type Listener } from './edge/listener.ts';
import type { Logger } from './telemetry/logger.ts';
import type { GatewayMetrics } from './telemetry/metrics.ts';
import { ClientCertificateStore, scramMockKey } from './backend/client-certificates.ts';
import { backendContext, serveClient, type SessionContext } from './session/session.ts';
import type { Splice } from './session/splice.ts';
import type { TenantDirectory } from './tenants/directory.ts';
import type { CertificateInput } from './edge/tls-contexts.ts';
import { TlsContexts } from './edge/tls-contexts.ts';
import { Refusal } from './errors.ts';
import { SqlState } from '@tenantgate/wire';

export type GatewaySettings = Pick<
  GatewayConfig,
  'listen' | 'sniSuffixes' | 'allowPlaintext' | 'handshakeTimeoutMs' | 'maxPendingConnections' | 'authTimeoutMs' | 'backendConnectTimeoutMs' | 'secretsDir'
> &
  // PROXY protocol on the Postgres port; `off` when absent.
  Partial<Pick<GatewayConfig, 'proxyProtocol'>>;

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
}

export interface Gateway {
  readonly address: { host: string; port: number };
  /** Sessions spliced and open. */
  readonly activeSessions: number;
  /** New certificates (SIGHUP): new connections use them; open sessions keep theirs. */
  reloadCertificates(certificates: readonly CertificateInput[]): void;
  /** Forget cached tenant client certificates so the next connection reads them again. */
  reloadSecrets(): void;
  /**
   * Stops accepting, then ends sessions: idle ones (last ReadyForQuery 'I') at once with FATAL
   * 57P01 at a message boundary, others as they become idle; at the deadline the rest are closed.
   */
  drain(deadlineMs: number): Promise<void>;
  close(): Promise<void>;
}

const SHUTTING_DOWN = new Refusal(SqlState.AdminShutdown, 'terminating connection because the gateway is shutting down', {
  hint: 'Reconnect: another gateway will take the connection.',
});
const SHUTDOWN = SHUTTING_DOWN.toErrorResponse();

export async function createGateway(options: GatewayOptions): Promise<Gateway> {
  const { settings, logger, metrics } = options;
  const contexts = options.certificates.length > 0 ? new TlsContexts(options.certificates) : undefined;
  const shutdown = new AbortController();
  const ctx: SessionContext = {
    tenants: options.tenants,
    admission: new Admission(),
    cancels: new CancelRegistry({ metrics, ...(options.cancelStore === undefined ? {} : { store: options.cancelStore }) }),
    backendContexts: new BackendTlsContexts(),
    backendSessions: new TlsSessionCache(),
    backendDefaults: options.backendDefaults,
    clientCertificates: new ClientCertificateStore(settings.secretsDir),
    // Without an edge key (plaintext development only) the mock salts cannot be fleet-stable.
    mockKey: options.certificates[0] === undefined ? randomBytes(32) : scramMockKey(options.certificates[0].keyPem),
    metrics,
    timeouts: { authMs: settings.authTimeoutMs, backendConnectMs: settings.backendConnectTimeoutMs },
    sessions: new Set<Splice>(),
    shutdown: shutdown.signal,
  };
  // Connections between their handshake and the splice, so drain can wait for them.
  const settingUp = new Set<Promise<void>>();
  const listener = await startListener({
    config: settings,
    contexts,
    logger,
    metrics,
    reusePort: options.reusePort,
    onClient: (client, connection) => {
      const setup = serveClient(client, connection, ctx);
      settingUp.add(setup);
      void setup.finally(() => settingUp.delete(setup));
    },
    onCancel: (request, connection) => void forwardCancel(ctx, request, connection.log),
  });
  return gatewayHandle(listener, contexts, ctx, { shutdown, settingUp });
}

interface Lifecycle {
  readonly shutdown: AbortController;
  readonly settingUp: Set<Promise<void>>;
}

function gatewayHandle(listener: Listener, contexts: TlsContexts | undefined, ctx: SessionContext, life: Lifecycle): Gateway {
  return {
    address: listener.address,
    get activeSessions() {
      return ctx.sessions.size;
    },
    reloadCertificates: (certificates) => contexts?.reload(certificates),
    reloadSecrets: () => ctx.clientCertificates.clear(),
    drain: (deadlineMs) => drain(listener, ctx, life, deadlineMs),
    close: async () => {
      life.shutdown.abort(SHUTTING_DOWN);
      await listener.close();
      await Promise.all(life.settingUp);
      for (const session of ctx.sessions) session.destroy();
      await Promise.all([ctx.cancels.close(), ctx.tenants.close()]);
    },
  };
}

async function drain(listener: Listener, ctx: SessionContext, life: Lifecycle, deadlineMs: number): Promise<void> {
  await listener.close();
  // Sessions not yet spliced are refused with 57P01 (their setup watches this signal).
  life.shutdown.abort(SHUTTING_DOWN);
  await Promise.all(life.settingUp);
  for (const session of ctx.sessions) session.closeWhenIdle(SHUTDOWN);
  const deadline = Date.now() + deadlineMs;
  while (ctx.sessions.size > 0 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 50));
  for (const session of ctx.sessions) session.destroy();
}

async function forwardCancel(
  ctx: SessionContext,
  request: Parameters<CancelRegistry['forward']>[0],
  log: Logger,
): Promise<void> {
  const outcome = await ctx.cancels.forward(request, {
    secureContext: (target) => cancelContext(ctx, target),
    connectTimeoutMs: ctx.timeouts.backendConnectMs,
    sessionCache: ctx.backendSessions,
  });
  log.info({ result: outcome.result, tenant: outcome.tenantId, err: outcome.error }, 'cancel request');
}

/** The context the session was opened with: the tenant's identity, resolved again. */
async function cancelContext(ctx: SessionContext, target: CancelTarget) {
  const lookup = await ctx.tenants.resolve(target.tenantId);
  if (lookup.kind === 'unknown') throw new Error(`tenant "${target.tenantId}" no longer exists`);
  return backendContext(ctx, lookup.tenant);
}
