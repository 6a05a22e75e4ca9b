// Delivers every committed tenant write to Redis, the cache the gateways share: for each outbox
// row, in one MULTI, raise the tenant's floor key to the new version, delete its cached route and
// publish the invalidation. Rows leave the outbox only once Redis took them, so while Redis is
// down nothing is lost: the publisher backs off and retries, and drains the backlog in order
// when Redis is back. A slow poll also picks up rows another control plane left behind.
import type { ChainableCommander, Redis } from 'ioredis';
import type { FastifyBaseLogger } from 'fastify';
import { encodeInvalidation, INVALIDATION_CHANNEL, routeFloorKey, routeKey } from '@tenantgate/tenancy';
import type { PendingInvalidation, TenantStore } from './store.ts';

/** How soon to look again when another control plane holds the outbox lock. */
const BUSY_RETRY_MS = 200;

/** KEYS[1] floor key, ARGV[1] version: the floor becomes the larger of the two. */
export const RAISE_FLOOR_SCRIPT = `
local current = tonumber(redis.call('GET', KEYS[1]) or '0')
if tonumber(ARGV[1]) > current then redis.call('SET', KEYS[1], ARGV[1]) end
return 1
`;

/**
 * The cache side of one committed write (route-cache.ts), added to a MULTI: raise the tenant's
 * floor and drop its cached route. The floor only rises: a version drawn out of order must not
 * let an older route back in.
 */
export function dropCachedRoute(multi: ChainableCommander, id: string, floor: number): ChainableCommander {
  return multi.eval(RAISE_FLOOR_SCRIPT, 1, routeFloorKey(id), String(floor)).del(routeKey(id));
}

export interface InvalidationPublisherOptions {
  readonly store: TenantStore;
  readonly redis: Redis;
  readonly logger: FastifyBaseLogger;
  /** Called with how many invalidations reached Redis. */
  readonly onPublished?: (count: number) => void;
  /** Called on every failed attempt. */
  readonly onFailure?: () => void;
  /** First retry delay after a failure; doubles up to maxRetryDelayMs. Default 100 ms. */
  readonly minRetryDelayMs?: number;
  /** Default 5000 ms. */
  readonly maxRetryDelayMs?: number;
  /** How often the outbox is looked at without a write to kick it. Default 5000 ms. */
  readonly pollIntervalMs?: number;
}

const BATCH_SIZE = 100;

export class InvalidationPublisher {
  readonly #options: InvalidationPublisherOptions;
  readonly #onReady = () => this.#retryNow();
  readonly #onError = (error: Error) => this.#options.logger.debug({ err: error }, 'redis connection error');
  #draining: Promise<void> | undefined;
  #again = false;
  #failures = 0;
  #retryTimer: NodeJS.Timeout | undefined;
  #pollTimer: NodeJS.Timeout | undefined;
  #closed = false;

  /** Drains started and the number of the last one ended, for flush(). */
  #started = 0;
  #completed = 0;
  #waiters: { readonly target: number; readonly done: () => void }[] = [];

  constructor(options: InvalidationPublisherOptions) {
    this.#options = options;
  }

  /** Starts listening to the connection and drains what an earlier run left in the outbox. */
  start(): void {
    const { redis, pollIntervalMs = 5000 } = this.#options;
    redis.on('ready', this.#onReady);
    redis.on('error', this.#onError);
    this.#pollTimer = setInterval(() => this.kick(), pollIntervalMs).unref();
    this.kick();
  }

  /** Whether the last attempt to reach Redis succeeded (and no retry is pending). */
  get delivering(): boolean {
    return this.#failures === 0;
  }

  /** Something was committed: drain the outbox now (or after the pending retry). */
  kick(): void {
    if (this.#closed) return;
    if (this.#draining !== undefined) {
      this.#again = true;
      return;
    }
    if (this.#retryTimer !== undefined) return;
    const number = ++this.#started;
    this.#draining = this.#drain().finally(() => {
      this.#draining = undefined;
      this.#completed = number;
      this.#wake();
      if (this.#again) this.kick();
    });
  }

  /**
   * Kicks, then waits until a drain that began after this call has ended (published, found the
   * outbox empty, or failed), or `timeoutMs`. Returns at once while Redis is being retried.
   */
  async flush(timeoutMs: number): Promise<void> {
    const running = this.#draining !== undefined;
    this.kick();
    if (this.#closed || (!running && this.#draining === undefined)) return;
    // A running drain may have read the outbox before our row: the next one takes it.
    const target = running ? this.#started + 1 : this.#started;
    if (this.#completed >= target) return;
    await new Promise<void>((resolve) => {
      const timer = setTimeout(done, timeoutMs).unref();
      function done(): void {
        clearTimeout(timer);
        resolve();
      }
      this.#waiters.push({ target, done });
    });
  }

  #wake(): void {
    const ready = this.#waiters.filter((w) => w.target <= this.#completed || this.#closed);
    if (ready.length === 0) return;
    this.#waiters = this.#waiters.filter((w) => !ready.includes(w));
    for (const waiter of ready) waiter.done();
  }

  /** Stops retrying and waits for a drain in progress; rows left stay in the outbox. */
  async close(): Promise<void> {
    this.#closed = true;
    clearTimeout(this.#retryTimer);
    clearInterval(this.#pollTimer);
    this.#options.redis.off('ready', this.#onReady);
    this.#options.redis.off('error', this.#onError);
    await this.#draining;
    this.#wake();
  }

  async #drain(): Promise<void> {
    for (;;) {
      this.#again = false;
      const result = await this.#options.store
        .drainInvalidations(BATCH_SIZE, (invalidation) => this.#publish(invalidation))
        .catch((error: unknown) => ({ published: 0, error }));
      // Another control plane is draining; look again shortly (it may not have seen our rows).
      if (result === 'busy') return this.#retrySoon();
      if (result.published > 0) this.#options.onPublished?.(result.published);
      if ('error' in result) return this.#failed(result.error);
      if (this.#failures > 0) this.#options.logger.info({ failedAttempts: this.#failures }, 'invalidations are reaching redis again');
      this.#failures = 0;
      if (result.published < BATCH_SIZE && !this.#again) return;
    }
  }

  /** A retry after the lock holder has likely finished, without counting as a failure. */
  #retrySoon(): void {
    if (this.#closed || this.#retryTimer !== undefined) return;
    this.#retryTimer = setTimeout(() => {
      this.#retryTimer = undefined;
      this.kick();
    }, BUSY_RETRY_MS).unref();
  }

  async #publish({ id, version, floor }: PendingInvalidation): Promise<void> {
    const results = await dropCachedRoute(this.#options.redis.multi(), id, floor)
      .publish(INVALIDATION_CHANNEL, encodeInvalidation({ id, version }))
      .exec();
    if (results === null) throw new Error('the redis transaction was aborted');
    for (const [error] of results) if (error !== null) throw error;
  }

  #failed(error: unknown): void {
    this.#failures += 1;
    this.#options.onFailure?.();
    const { logger, minRetryDelayMs = 100, maxRetryDelayMs = 5000 } = this.#options;
    // Said once per outage; the retries that follow are debug noise.
    if (this.#failures === 1) logger.warn({ err: error }, 'cannot publish invalidations; they wait in the outbox and are retried');
    else logger.debug({ err: error, failedAttempts: this.#failures }, 'invalidation retry failed');
    const backoff = Math.min(maxRetryDelayMs, minRetryDelayMs * 2 ** Math.min(this.#failures - 1, 16));
    const delay = backoff / 2 + Math.random() * (backoff / 2);
    if (this.#closed) return;
    this.#retryTimer = setTimeout(() => {
      this.#retryTimer = undefined;
      this.kick();
    }, delay).unref();
  }

  /** Redis is (back) up: retry at once instead of waiting out the backoff. */
  #retryNow(): void {
    if (this.#retryTimer === undefined) return;
    clearTimeout(this.#retryTimer);
    this.#retryTimer = undefined;
    this.kick();
  }
}
