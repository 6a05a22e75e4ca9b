// The backend leg's TLS for every tenant: the tenant's CA and client certificate (or the
// gateway's defaults) as a secure context built once, and TLS sessions resumed per backend.
// Sessions and cancel forwarding both reach a tenant's backend through this.
// Map: docs/architecture.md, step 10.
import type { SecureContext } from 'node:tls';
import type { Tenant } from '@tenantgate/tenancy';
import type { ClientCertificateStore } from './client-certificates.ts';
import {
  BACKEND_MIN_TLS_VERSION,
  BackendTlsContexts,
  TlsSessionCache,
  backendTlsIdentity,
  type BackendTlsDefaults,
  type BackendTlsMinVersion,
} from './tls.ts';
import { GatewaySetupError } from '../errors.ts';

export class BackendTls {
  readonly contexts = new BackendTlsContexts();
  /** Resumption tickets per backend and context: a repeat connection skips the full handshake. */
  readonly sessions = new TlsSessionCache();
  #defaults: Partial<BackendTlsDefaults>;
  readonly #clientCertificates: ClientCertificateStore;
  readonly #minVersion: BackendTlsMinVersion;

  /**
   * `defaults` may lack either part: then every tenant must name its own. `minVersion`
   * (GATEWAY_BACKEND_TLS_MIN_VERSION) is the floor of tenants that set none.
   */
  constructor(
    defaults: Partial<BackendTlsDefaults>,
    clientCertificates: ClientCertificateStore,
    minVersion: BackendTlsMinVersion = BACKEND_MIN_TLS_VERSION,
  ) {
    this.#defaults = defaults;
    this.#clientCertificates = clientCertificates;
    this.#minVersion = minVersion;
  }

  /** The oldest TLS version the tenant's backend may use. */
  minVersionFor(tenant: Tenant): BackendTlsMinVersion {
    return tenant.backend.tls?.minVersion ?? this.#minVersion;
  }

  /** The tenant's CA (or the default) and client certificate (or the default), built once. */
  async contextFor(tenant: Tenant): Promise<SecureContext> {
    const reference = tenant.backend.clientCertificate;
    const clientCertificate = reference === undefined ? this.#defaults.clientCertificate : await this.#clientCertificates.get(reference);
    const caPem = tenant.backend.caCertificate ?? this.#defaults.caPem;
    if (clientCertificate === undefined || caPem === undefined) {
      throw new GatewaySetupError(`tenant "${tenant.id}" has no backend CA or client certificate, and the gateway has no default`);
    }
    const identity = backendTlsIdentity({ caCertificate: caPem }, { caPem, clientCertificate }, clientCertificate);
    return this.contexts.get({ ...identity, minVersion: this.minVersionFor(tenant) });
  }

  /**
   * New defaults (a rotated CA or client certificate) for connections from now on. They are
   * loaded first: when they do not load, the old ones stay and this throws.
   * @throws BackendTlsConfigError
   */
  reloadDefaults(defaults: Partial<BackendTlsDefaults>): void {
    const { caPem, clientCertificate } = defaults;
    if (caPem !== undefined && clientCertificate !== undefined) this.contexts.get({ caPem, ...clientCertificate });
    else if (caPem !== undefined) this.contexts.check({ caPem });
    else if (clientCertificate !== undefined) this.contexts.check(clientCertificate);
    this.#defaults = defaults;
  }

  /** Forget cached tenant client certificates (SIGHUP) so the next connection reads them again. */
  reloadClientCertificates(): void {
    this.#clientCertificates.clear();
  }
}

/** Where the tenant's backend is, as openBackend and the cancel registry take it. */
export function backendAddress(tenant: Tenant): { host: string; port: number; serverName?: string } {
  const { host, port, serverName } = tenant.backend;
  return serverName === undefined ? { host, port } : { host, port, serverName };
}
