// Cancel attempts per client address, two token buckets each (limits/token-bucket.ts) in a
// bounded map: one spent by keys that match no session (guesses), one by keys that match. A flood
// of guesses from one address (or one NAT) then cannot probe keys faster than the guess rate,
// and cannot use up the allowance of the real clients behind that address either.
// Map: docs/architecture.md, "Cancel routing".
import { AddressBuckets } from '../limits/index.ts';

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

export class CancelRateLimiter {
  readonly #buckets: AddressBuckets<CancelAttempt>;

  constructor(limit: Partial<CancelRateLimit> = {}, now: () => number = Date.now) {
    const { perSecond, burst, maxClients } = { ...DEFAULT_CANCEL_RATE_LIMIT, ...limit };
    this.#buckets = new AddressBuckets({ perSecond, size: burst }, ['guess', 'match'], { maxAddresses: maxClients, now });
  }

  get size(): number {
    return this.#buckets.size;
  }

  /** Takes one token of `kind` for `address`; false when that bucket is empty. */
  take(address: string, kind: CancelAttempt): boolean {
    return this.#buckets.take(address, kind);
  }
}
