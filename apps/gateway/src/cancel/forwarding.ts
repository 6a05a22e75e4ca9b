// A client's CancelRequest, from the edge to the tenant's backend: the registry names the
// session, the tenant is resolved again for its backend TLS identity, and the outcome is logged.
// Map: docs/architecture.md, "Cancel routing".
import type { TenantDirectory } from '../tenants/index.ts';
import type { BackendTls } from '../backend/index.ts';
import { logClientEvent, type Logger } from '../telemetry/index.ts';
import { sendCancel, type CancelForwardOptions, type CancelRegistry, type CancelTarget, type ClientCancel } from './registry.ts';

export interface CancelForwardingOptions {
  readonly registry: CancelRegistry;
  readonly tenants: TenantDirectory;
  readonly backendTls: BackendTls;
  readonly connectTimeoutMs: number;
}

export class CancelForwarding {
  readonly #options: CancelForwardingOptions;
  /** How every CancelRequest of this gateway reaches a backend. */
  readonly #forwardOptions: CancelForwardOptions;

  constructor(options: CancelForwardingOptions) {
    this.#options = options;
    this.#forwardOptions = {
      secureContext: (target) => this.#contextFor(target),
      connectTimeoutMs: options.connectTimeoutMs,
      sessionCache: options.backendTls.sessions,
    };
  }

  /** Forwards the request in the background; never throws (the client is told nothing). */
  forward(request: ClientCancel, connection: { readonly log: Logger }): void {
    void this.#forward(request, connection.log);
  }

  /**
   * The backend's own CancelRequest for a session the gateway ends itself (an operator's
   * terminate), over the tenant's mutual TLS as a client's cancel goes. Throws when it cannot be sent.
   */
  async cancel(target: CancelTarget): Promise<void> {
    await sendCancel(target, this.#forwardOptions);
  }

  async #forward(request: ClientCancel, log: Logger): Promise<void> {
    const outcome = await this.#options.registry.forward(request, this.#forwardOptions);
    logClientEvent(log, 'info', { result: outcome.result, tenant: outcome.tenantId, err: outcome.error }, 'cancel request');
  }

  /** The context the session was opened with: the tenant's identity, resolved again. */
  async #contextFor(target: CancelTarget) {
    const lookup = await this.#options.tenants.resolve(target.tenantId);
    if (lookup.kind === 'unknown') throw new Error(`tenant "${target.tenantId}" no longer exists`);
    return this.#options.backendTls.contextFor(lookup.tenant);
  }
}
