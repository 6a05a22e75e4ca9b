// Cancel attempts per client address, two token buckets each (limits/token-bucket.ts) in a
// bounded map: one spent by keys that match no session (guesses), one by keys that match. A flood
// of guesses from one address (or one NAT) then cannot probe keys faster than the guess rate,
// and cannot use up the allowance of the real clients behind that address either.
// Map: docs/architecture.md, "Cancel routing".
import { fullBucket, takeToken, type TokenBucket } from '../limits/index.ts';

export interface CancelRateLimit {
  /** Tokens added per second and address, to each of its two buckets (default 10). */
  readonly perSecond: number;
  /** Bucket size: attempts allowed at once, of each kind (default 20). */
  readonly burst: number;
  /** Addresses tracked; the least recently seen is forgotten first (default 10,000). */
  readonly maxClients: number;
}

export const DEFAULT_CANCEL_RATE_LIMIT: CancelRateLimit = { perSecond: 10, burst: 20, maxClients: 10_000 };

/** What a cancel key turned out to be. */
export type CancelAttempt = 'guess' | 'match';

interface AddressBuckets {
  readonly guess: TokenBucket;
  readonly match: TokenBucket;
}

/**
 * Two token buckets per client address, in a bounded map kept in least-recently-seen order. A
 * forgotten address starts again with full buckets: with the default bound, forgetting one
 * takes 10,000 other addresses in between.
 */
export class CancelRateLimiter {
  readonly #limit: CancelRateLimit;
  readonly #now: () => number;
  readonly #buckets = new Map<string, AddressBuckets>();

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

  /** Takes one token of `kind` for `address`; false when that bucket is empty. */
  take(address: string, kind: CancelAttempt): boolean {
    const now = this.#now();
    const limit = { perSecond: this.#limit.perSecond, size: this.#limit.burst };
    const buckets = this.#buckets.get(address) ?? { guess: fullBucket(limit, now), match: fullBucket(limit, now) };
    this.#buckets.delete(address);
    this.#buckets.set(address, buckets);
    if (this.#buckets.size > this.#limit.maxClients) this.#buckets.delete(this.#buckets.keys().next().value as string);
    return takeToken(buckets[kind], limit, now);
  }
}
