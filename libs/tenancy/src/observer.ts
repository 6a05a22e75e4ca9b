// What the resolver tells its owner, for metrics and logs. The gateway maps these callbacks to
// tenantgate_cache_requests_total{tier,result}, tenantgate_control_plane_request_duration_seconds
// {status} and log lines; the library itself neither logs nor owns a metrics registry.

export const CacheTier = { Memory: 'memory', Redis: 'redis', ControlPlane: 'control_plane' } as const;
export type CacheTier = (typeof CacheTier)[keyof typeof CacheTier];

export const CacheResult = {
  /** A route. */
  Hit: 'hit',
  /** A (cached) "no such tenant". */
  NegativeHit: 'negative_hit',
  Miss: 'miss',
  /** An expired route served because the tiers behind failed (stale-if-error). Tier memory. */
  Stale: 'stale',
  /** The tier itself failed (Redis unreachable, control plane down); the next step answered. */
  Error: 'error',
} as const;
export type CacheResult = (typeof CacheResult)[keyof typeof CacheResult];

export const RedisConnectionRole = { Commands: 'commands', Subscriber: 'subscriber' } as const;
export type RedisConnectionRole = (typeof RedisConnectionRole)[keyof typeof RedisConnectionRole];

export const RedisConnectionState = {
  /** Usable (for the subscriber: subscribed to the invalidation channel). */
  Ready: 'ready',
  /** Lost or never made; ioredis retries in the background. Reported once per outage. */
  Down: 'down',
  /** close() ended it. */
  Closed: 'closed',
} as const;
export type RedisConnectionState = (typeof RedisConnectionState)[keyof typeof RedisConnectionState];

export interface ControlPlaneRequestEvent {
  readonly tenantId: string;
  /** The HTTP status, or 'error' when no response came (refused, reset, timed out). */
  readonly status: number | 'error';
  readonly durationSeconds: number;
  /** 0 for the first try, then 1, 2, ... for retries. */
  readonly attempt: number;
  /** Why the request failed (a transport error, an unexpected status, a malformed body). */
  readonly error?: Error;
}

export interface RedisConnectionEvent {
  readonly role: RedisConnectionRole;
  readonly state: RedisConnectionState;
  /** The error that took the connection down, when there was one. */
  readonly error?: Error;
}

export interface RedisErrorEvent {
  /** `message`: something on the invalidation channel that is not an invalidation. */
  readonly operation: 'get' | 'fill' | 'subscribe' | 'message';
  readonly tenantId?: string;
  readonly error: Error;
}

export interface StaleServedEvent {
  readonly tenantId: string;
  readonly version: number;
  readonly ageSeconds: number;
  /** Why fresh data could not be had (a ControlPlaneError, usually). */
  readonly error: Error;
}

export interface InvalidationEvent {
  /** null when the whole memory tier was expired (the subscriber reconnected). */
  readonly tenantId: string | null;
  readonly version: number | null;
}

/**
 * Every callback is optional and called synchronously on the resolver's path: keep them cheap.
 * One that throws is reported with process.emitWarning and does not disturb resolving.
 */
export interface TenantResolverObserver {
  /** One lookup in one tier, e.g. (memory, miss) then (redis, hit). */
  cacheRequest?(tier: CacheTier, result: CacheResult, tenantId: string): void;
  /** One HTTP attempt to the control plane (retries are separate calls). */
  controlPlaneRequest?(event: ControlPlaneRequestEvent): void;
  /** A Redis connection changed state. */
  redisConnection?(event: RedisConnectionEvent): void;
  /** A Redis command failed; the resolver carried on without it. */
  redisError?(event: RedisErrorEvent): void;
  /** A stale route was served (also counted as cacheRequest(memory, stale)). */
  staleServed?(event: StaleServedEvent): void;
  /** An invalidation was applied to the memory tier. */
  invalidation?(event: InvalidationEvent): void;
}

/** The observer with every callback present and guarded, so call sites need no checks. */
export type Notifier = Required<TenantResolverObserver>;

export function createNotifier(observer: TenantResolverObserver = {}): Notifier {
  const guard =
    <A extends unknown[]>(callback: ((...args: A) => void) | undefined) =>
    (...args: A): void => {
      if (callback === undefined) return;
      try {
        callback.apply(observer, args);
      } catch (error) {
        process.emitWarning(error instanceof Error ? error : String(error), { code: 'TG_WARN_RESOLVER_OBSERVER' });
      }
    };
  return {
    cacheRequest: guard(observer.cacheRequest),
    controlPlaneRequest: guard(observer.controlPlaneRequest),
    redisConnection: guard(observer.redisConnection),
    redisError: guard(observer.redisError),
    staleServed: guard(observer.staleServed),
    invalidation: guard(observer.invalidation),
  };
}
