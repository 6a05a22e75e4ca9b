// Exponential backoff with "full jitter": the delay before retry n (0-based) is uniform in
// [0, min(maxMs, baseMs * 2^n)). Spreading retries over the whole window keeps a fleet of
// gateways that failed together from retrying together.
// @see https://aws.amazon.com/blogs/architecture/exponential-backoff-and-jitter/

export interface BackoffPolicy {
  readonly baseMs: number;
  readonly maxMs: number;
}

/** The ceiling of the window for retry `attempt` (0-based). */
export function backoffCeiling(attempt: number, policy: BackoffPolicy): number {
  // 2 ** 1100 is Infinity, which Math.min handles, but 0 * Infinity is NaN: a zero base stays 0.
  if (policy.baseMs <= 0) return 0;
  return Math.min(policy.maxMs, policy.baseMs * 2 ** Math.max(0, attempt));
}

/** A whole number of milliseconds in [0, ceiling); `random` returns values in [0, 1). */
export function fullJitterDelay(attempt: number, policy: BackoffPolicy, random: () => number = Math.random): number {
  return Math.floor(random() * backoffCeiling(attempt, policy));
}
