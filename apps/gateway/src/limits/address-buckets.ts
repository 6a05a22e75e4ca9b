// Token buckets per client address, in a bounded map kept in least-recently-seen order: the
// per-address rates of the edge (new connections) and of cancel requests (guesses and matches).
// A forgotten address starts again with full buckets; with the default bound, forgetting one
// takes 10,000 other addresses in between.
// Map: docs/architecture.md, step 1.
import { fullBucket, hasToken, takeToken, type BucketLimit, type TokenBucket } from './token-bucket.ts';

export const DEFAULT_MAX_ADDRESSES = 10_000;

export class AddressBuckets<Kind extends string> {
  readonly #limit: BucketLimit;
  readonly #kinds: readonly Kind[];
  readonly #maxAddresses: number;
  readonly #now: () => number;
  readonly #buckets = new Map<string, Record<Kind, TokenBucket>>();

  /** One bucket of `limit` per address and kind. */
  constructor(limit: BucketLimit, kinds: readonly Kind[], options: { maxAddresses?: number; now?: () => number } = {}) {
    const maxAddresses = options.maxAddresses ?? DEFAULT_MAX_ADDRESSES;
    if (!(limit.perSecond > 0) || !(limit.size >= 1) || !Number.isInteger(maxAddresses) || maxAddresses < 1) {
      throw new RangeError(`address buckets: bad perSecond ${limit.perSecond}, size ${limit.size} or maxAddresses ${maxAddresses}`);
    }
    this.#limit = limit;
    this.#kinds = kinds;
    this.#maxAddresses = maxAddresses;
    this.#now = options.now ?? (() => performance.now());
  }

  /** Addresses tracked. */
  get size(): number {
    return this.#buckets.size;
  }

  /** Whether `address` has a token of `kind` left, taking none. */
  available(address: string, kind: Kind): boolean {
    const buckets = this.#buckets.get(address);
    return buckets === undefined || hasToken(buckets[kind], this.#limit, this.#now());
  }

  /** Takes one token of `kind` for `address`; false when that bucket is empty. */
  take(address: string, kind: Kind): boolean {
    const now = this.#now();
    let buckets = this.#buckets.get(address);
    if (buckets === undefined) {
      buckets = Object.fromEntries(this.#kinds.map((k) => [k, fullBucket(this.#limit, now)])) as Record<Kind, TokenBucket>;
    } else {
      this.#buckets.delete(address);
    }
    this.#buckets.set(address, buckets);
    if (this.#buckets.size > this.#maxAddresses) this.#buckets.delete(this.#buckets.keys().next().value as string);
    return takeToken(buckets[kind], this.#limit, now);
  }
}
