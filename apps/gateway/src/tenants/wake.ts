// Waking a sleeping tenant (docs/architecture.md, "Sleep and wake"): the gateway asks the control
// plane once (concurrent clients of one tenant share the request; the control plane makes one
// wake of the requests of every gateway), then holds its clients until the tenant's route says
// it is no longer sleeping. The route is looked at again when an invalidation for the tenant
// arrives (the control plane's write that makes it active publishes one), not by a loop per
// client: each tenant being woken has one watch, shared by its waiting clients, whose slow timer
// also covers a lost message (or, without Redis, stands in for the channel).
import type { TenantResolver } from '@tenantgate/tenancy';
import { ControlPlaneStatusError, SingleFlight, TenantStatus, waitOrAbort } from '@tenantgate/tenancy';
import type { TenantLookup } from './directory.ts';

/** How often a watched tenant's route is fetched again anyway: with the channel, and without. */
const RECHECK_WITH_CHANNEL_MS = 5000;
const RECHECK_WITHOUT_CHANNEL_MS = 500;

/** The waiters of one tenant being woken: `next` settles at its next invalidation or timer tick. */
class Watch {
  waiters = 0;
  next: Promise<void>;
  readonly timer: NodeJS.Timeout;
  #settle: () => void = () => {};

  constructor(onTick: () => void, intervalMs: number) {
    this.next = this.#arm();
    this.timer = setInterval(() => {
      onTick();
      this.fire();
    }, intervalMs).unref();
  }

  fire(): void {
    const settle = this.#settle;
    this.next = this.#arm();
    settle();
  }

  #arm(): Promise<void> {
    return new Promise((resolve) => (this.#settle = resolve));
  }
}

type WakeAnswer = 'active' | 'waking' | 'unknown';

export class TenantWaker {
  readonly #resolver: Pick<TenantResolver, 'requestWake' | 'forget'>;
  readonly #resolve: (tenantId: string, signal: AbortSignal) => Promise<TenantLookup>;
  readonly #recheckMs: number;
  /** One wake request in flight per tenant; each client waits for it under its own signal. */
  readonly #requests = new SingleFlight<WakeAnswer>();
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
      const request = this.#requests.run(tenantId, (flight) => this.#resolver.requestWake(tenantId, flight.signal), signal);
      const asked = await request.catch((error: unknown) => {
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
        await waitOrAbort(next, signal);
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

  #watch(tenantId: string): Watch {
    let watch = this.#watches.get(tenantId);
    if (watch === undefined) {
      watch = new Watch(() => this.#resolver.forget(tenantId), this.#recheckMs);
      this.#watches.set(tenantId, watch);
    }
    watch.waiters += 1;
    return watch;
  }
}
