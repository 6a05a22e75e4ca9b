// Cancel attempts per client address: a token bucket each (limits/token-bucket.ts), in a bounded
// map, so a flood of guesses from one address cannot probe keys or make the gateway open backends.
// Map: docs/architecture.md, "Cancel routing".
import { fullBucket, takeToken, type TokenBucket } from '../limits/index.ts';

export interface CancelRateLimit {
  /** Tokens added per second and address (default 10). */
  readonly perSecond: number;
  /** Bucket size: attempts allowed at once (default 20). */
  readonly burst: number;
  /** Addresses tracked; the least recently seen is forgotten first (default 10,000). */
  readonly maxClients: number;
}

export const DEFAULT_CANCEL_RATE_LIMIT: CancelRateLimit = { perSecond: 10, burst: 20, maxClients: 10_000 };

/**
 * A token bucket per client address, in a bounded map kept in least-recently-seen order. A
 * forgotten address starts again with a full bucket: with the default bound, forgetting one
 * takes 10,000 other addresses in between.
 */
export class CancelRateLimiter {
  readonly #limit: CancelRateLimit;
  readonly #now: () => number;
  readonly #buckets = new Map<string, TokenBucket>();

  constructor(limit: Partial<CancelRateLimit> = {}, now: () => number = Date.now) {
    this.#limit = { ...DEFAULT_CANCEL_RATE_LIMIT, ...limit };
    const { perSecond, burst, maxClients } = this.#limit;
    if (!(perSecond > 0) || !(burst >= 1) || !Number.isInteger(maxClients) || maxClients < 1) {
      throw new RangeError(`cancel rate limit: bad perSecond ${perSecond}, burst ${burst} or maxClients ${maxClients}`);
    }
    this.#now = now;
  }

  get size(): number {
    return this.#buckets.size;
  }

  /** Takes one token for `address`; false when its bucket is empty. */
  take(address: string): boolean {
    const now = this.#now();
    const limit = { perSecond: this.#limit.perSecond, size: this.#limit.burst };
    const bucket = this.#buckets.get(address) ?? fullBucket(limit, now);
    this.#buckets.delete(address);
    this.#buckets.set(address, bucket);
    if (this.#buckets.size > this.#limit.maxClients) this.#buckets.delete(this.#buckets.keys().next().value as string);
    return takeToken(bucket, limit, now);
  }
}

