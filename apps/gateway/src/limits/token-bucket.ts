// The token bucket behind every rate limit of the gateway: a tenant's connects per second
// (session/admission.ts) and an address's cancel attempts (cancel/rate-limit.ts). The state is a
// plain object, so a limit that changes (a tenant's record is updated) applies at the next take.
// Map: docs/architecture.md, step 7.

export interface TokenBucket {
  tokens: number;
  /** When `tokens` was last brought up to date, in ms of the caller's clock. */
  at: number;
}

export interface BucketLimit {
  /** Tokens added per second. */
  readonly perSecond: number;
  /** Most tokens the bucket holds: the burst allowed at once. */
  readonly size: number;
}

export function fullBucket(limit: BucketLimit, now: number): TokenBucket {
  return { tokens: limit.size, at: now };
}

/** Refills for the time since the last take, then takes one token; false when none is left. */
export function takeToken(bucket: TokenBucket, limit: BucketLimit, now: number): boolean {
  refill(bucket, limit, now);
  if (bucket.tokens < 1) return false;
  bucket.tokens -= 1;
  return true;
}

/** Whether a token could be taken now, taking none. */
export function hasToken(bucket: TokenBucket, limit: BucketLimit, now: number): boolean {
  return bucket.tokens + (Math.max(0, now - bucket.at) * limit.perSecond) / 1000 >= 1;
}

/** Whether the bucket would be full now: forgetting it loses nothing, since a new one starts full. */
export function isFull(bucket: TokenBucket, limit: BucketLimit, now: number): boolean {
  return bucket.tokens + (Math.max(0, now - bucket.at) * limit.perSecond) / 1000 >= limit.size;
}

function refill(bucket: TokenBucket, limit: BucketLimit, now: number): void {
  bucket.tokens = Math.min(limit.size, bucket.tokens + (Math.max(0, now - bucket.at) * limit.perSecond) / 1000);
  bucket.at = now;
}
