// Waking a sleeping tenant (docs/architecture.md, "Sleep and wake"): the gateway asks the control
// plane once (concurrent clients of one tenant share the request; the control plane makes one
// wake of the requests of every gateway), then holds its clients until the tenant's route says
// it is no longer sleeping. The route is looked at again when an invalidation for the tenant
// arrives (the control plane's write that makes it active publishes one), not by a loop per
// client: each tenant being woken has one watch, shared by its waiting clients, whose slow timer
// also covers a lost message (or, without Redis, stands in for the channel).
import type { TenantResolver } from '@tenantgate/tenancy';
import { ControlPlaneStatusError, TenantStatus } from '@tenantgate/tenancy';
import type { TenantLookup } from './directory.ts';

/** How often a watched tenant's route is fetched again anyway: with the channel, and without. */
const RECHECK_WITH_CHANNEL_MS = 5000;
const RECHECK_WITHOUT_CHANNEL_MS = 500;

interface Watch {
  waiters: number;
  next: Promise<void>;
  fire: () => void;
  timer: NodeJS.Timeout;
}

export class TenantWaker {
  readonly #resolver: Pick<TenantResolver, 'requestWake' | 'forget'>;
  readonly #resolve: (tenantId: string, signal: AbortSignal) => Promise<TenantLookup>;
  readonly #recheckMs: number;
  readonly #requests = new Map<string, Promise<'active' | 'waking' | 'unknown'>>();
  readonly #watches = new Map<string, Watch>();

  constructor(
    resolver: Pick<TenantResolver, 'requestWake' | 'forget'>,
    resolve: (tenantId: string, signal: AbortSignal) => Promise<TenantLookup>,
    options: { readonly channel: boolean },
  ) {
    this.#resolver = resolver;
    this.#resolve = resolve;
    this.#recheckMs = options.channel ? RECHECK_WITH_CHANNEL_MS : RECHECK_WITHOUT_CHANNEL_MS;
  }

  /**
   * Wakes the tenant and waits until its route is not `sleeping` any more (or `signal` aborts).
   * @throws ControlPlaneError when the control plane does not take the request; the signal's reason
   */
  async wake(tenantId: string, signal: AbortSignal): Promise<TenantLookup> {
    const watch = this.#watch(tenantId);
    try {
      const asked = await abortable(this.#request(tenantId), signal).catch((error: unknown) => {
        // 409: not sleeping any more (suspended, in maintenance, being provisioned): what the route
        // says now decides, as for any client.
        if (error instanceof ControlPlaneStatusError && error.statusCode === 409) return 'changed' as const;
        throw error;
      });
      if (asked === 'unknown') return { kind: 'unknown' };
      if (asked === 'changed') {
        this.#resolver.forget(tenantId);
        return await this.#resolve(tenantId, signal);
      }
      for (;;) {
        const next = watch.next;
        const lookup = await this.#resolve(tenantId, signal);
        if (lookup.kind === 'unknown' || lookup.tenant.status !== TenantStatus.Sleeping) return lookup;
        await abortable(next, signal);
      }
    } finally {
      if (--watch.waiters === 0) {
        clearInterval(watch.timer);
        this.#watches.delete(tenantId);
      }
    }
  }

  /** An invalidation for the tenant (null: for every tenant) came: its waiters look again. */
  changed(tenantId: string | null): void {
    if (tenantId !== null) return this.#watches.get(tenantId)?.fire();
    for (const watch of this.#watches.values()) watch.fire();
  }

  /** One request in flight per tenant; each client waits for it under its own signal. */
  #request(tenantId: string): Promise<'active' | 'waking' | 'unknown'> {
    let request = this.#requests.get(tenantId);
    if (request === undefined) {
      request = this.#resolver.requestWake(tenantId, new AbortController().signal).finally(() => this.#requests.delete(tenantId));
      this.#requests.set(tenantId, request);
    }
    return request;
  }

  #watch(tenantId: string): Watch {
    let watch = this.#watches.get(tenantId);
    if (watch === undefined) {
      const created: Watch = { waiters: 0, next: Promise.resolve(), fire: () => {}, timer: undefined as unknown as NodeJS.Timeout };
      const arm = () => {
        created.next = new Promise((resolve) => {
          created.fire = () => {
            arm();
            resolve();
          };
        });
      };
      arm();
      created.timer = setInterval(() => {
        this.#resolver.forget(tenantId);
        created.fire();
      }, this.#recheckMs).unref();
      watch = created;
      this.#watches.set(tenantId, watch);
    }
    watch.waiters += 1;
    return watch;
  }
}

/** The promise's outcome, or the signal's reason if it aborts first. */
function abortable<T>(promise: Promise<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) return Promise.reject(signal.reason as Error);
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(signal.reason as Error);
    signal.addEventListener('abort', onAbort, { once: true });
    promise.then(resolve, reject).finally(() => signal.removeEventListener('abort', onAbort));
  });
}
