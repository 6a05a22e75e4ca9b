// Idle suspend (docs/architecture.md, "Sleep and wake"): a tenant with idleSuspendSeconds is put
// to sleep once no gateway has held a session of it for that long. The gateways' live sessions
// are their fleet leases in Redis (one sorted-set member per session, removed when it ends), so
// this needs REDIS_URL. Each control plane watches every such tenant once a second; the first
// to find one idle long enough starts its suspend, the store making sure that happens once.
import type { FastifyBaseLogger } from 'fastify';
import type { Redis } from 'ioredis';
import { leasesKey } from '@tenantgate/tenancy';
import type { TenantStore } from '../store.ts';

export interface IdleSuspenderOptions {
  readonly store: TenantStore;
  readonly redis: Redis;
  readonly logger: FastifyBaseLogger;
  /** A suspend was started (a new version to publish, a job to run). */
  readonly onSuspend: () => void;
  /** Default 1000 ms. */
  readonly intervalMs?: number;
}

/** Sessions of the tenant whose leases have not expired, by Redis's clock. */
export async function liveSessions(redis: Redis, tenantId: string): Promise<number> {
  const [seconds, micros] = await redis.time();
  const now = Number(seconds) * 1000 + Math.floor(Number(micros) / 1000);
  return redis.zcount(leasesKey(tenantId), `(${now}`, '+inf');
}

export class IdleSuspender {
  readonly #options: IdleSuspenderOptions;
  /** When each watched tenant was last seen with a session (or first seen without one). */
  readonly #lastBusy = new Map<string, number>();
  #timer: NodeJS.Timeout | undefined;
  #running: Promise<void> | undefined;

  constructor(options: IdleSuspenderOptions) {
    this.#options = options;
  }

  start(): void {
    this.#timer = setInterval(() => {
      this.#running ??= this.#tick()
        .catch((error: unknown) => this.#options.logger.debug({ err: error }, 'idle check failed; tried again in a second'))
        .finally(() => (this.#running = undefined));
    }, this.#options.intervalMs ?? 1000).unref();
  }

  async close(): Promise<void> {
    clearInterval(this.#timer);
    await this.#running;
  }

  async #tick(): Promise<void> {
    const { store, redis, logger } = this.#options;
    const now = Date.now();
    const candidates = await store.idleCandidates();
    const watched = new Set(candidates.map((c) => c.id));
    for (const id of this.#lastBusy.keys()) if (!watched.has(id)) this.#lastBusy.delete(id);
    for (const { id, idleSuspendSeconds, cluster } of candidates) {
      if ((await liveSessions(redis, id)) > 0 || !this.#lastBusy.has(id)) {
        this.#lastBusy.set(id, now);
        continue;
      }
      if (now - (this.#lastBusy.get(id) as number) < idleSuspendSeconds * 1000) continue;
      this.#lastBusy.delete(id);
      if (await store.startSuspend(id, cluster)) {
        logger.info({ tenant: id, idleSuspendSeconds }, 'tenant idle: suspending');
        this.#options.onSuspend();
      }
    }
  }
}
