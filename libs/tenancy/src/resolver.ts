// The tenant resolver (docs/architecture.md, step 6): memory (short TTL) → Redis (shared by the
// fleet, longer TTL) → control plane. Concurrent misses for one tenant share one flight through
// Redis and the control plane. "No such tenant" is cached for a short time. When the control
// plane fails, the last good route is served while not too old (stale-if-error); when it is
// slow, an expired route is served after a short deadline while the refresh goes on
// (stale-while-revalidate); after repeated failures a circuit breaker stops asking it for a while.
//
// Invalidations keep the tiers honest: one drops the tenant from memory and supersedes a flight
// in progress for it, so a value read before the write is neither kept in memory nor (the floor
// of route-cache.ts refusing it) in Redis. After the subscriber (re)subscribes, everything in
// memory is treated as possibly outdated.
import { CircuitBreaker } from './circuit-breaker.ts';
import {
  ControlPlaneCircuitOpenError,
  ControlPlaneSlowError,
  TenantDirectoryUnavailableError,
  TenantResolverClosedError,
} from './errors.ts';
import { ControlPlaneClient } from './control-plane-client.ts';
import { InvalidationSubscriber } from './invalidation.ts';
import { MemoryTier, type StaleRoute } from './memory-tier.ts';
import { CacheResult, CacheTier, createNotifier, type Notifier } from './observer.ts';
import { RedisTier } from './redis-tier.ts';
import { resolveOptions, type ResolvedResolverOptions, type TenantResolverOptions } from './resolver-options.ts';
import { UNKNOWN_TENANT, type RouteAnswer } from './route-answer.ts';
import type { InvalidationMessage } from './route-cache.ts';
import { TENANT_ID_PATTERN } from './schema.ts';
import { SingleFlight, waitOrAbort, type Flight } from './single-flight.ts';
import type { TenantRoute } from './tenant.ts';

const TENANT_ID = new RegExp(TENANT_ID_PATTERN);

export type TenantResolution =
  /** `stale`: served from memory past its TTL because Redis and the control plane could not answer. */
  { readonly kind: 'found'; readonly route: TenantRoute; readonly stale?: boolean } | { readonly kind: 'unknown' };

export interface TenantResolver {
  /**
   * The route of a tenant, or "unknown". Never fails because of Redis. The route is shared and
   * frozen.
   * @throws TenantDirectoryUnavailableError when the control plane cannot answer and no stale
   *   route may stand in; TenantResolverClosedError after close(); the signal's reason when
   *   `signal` aborts first (which ends this caller's wait, not the shared request).
   */
  resolve(tenantId: string, signal?: AbortSignal): Promise<TenantResolution>;
  /**
   * Whether resolve() would answer from memory (a route, fresh or stale, or a fresh "unknown")
   * without waiting on Redis or the control plane.
   */
  isCached(tenantId: string): boolean;
  /** The memory tier now: entries held and what they weigh (bounded by memoryMaxEntries and memoryMaxBytes). */
  readonly memory: { readonly entries: number; readonly bytes: number };
  /**
   * Resolves once the Redis connection is ready and the invalidation channel subscribed (at once
   * without Redis). Resolving does not need it; tests and readiness probes may.
   */
  ready(signal?: AbortSignal): Promise<void>;
  /**
   * Asks the control plane to wake a sleeping tenant (POST /v1/routes/:id/wake).
   * @throws ControlPlaneError; the signal's reason when it aborts first
   */
  requestWake(tenantId: string, signal: AbortSignal): Promise<'active' | 'waking' | 'unknown'>;
  /** Drops what memory holds of the tenant: the next resolve() asks Redis or the control plane. */
  forget(tenantId: string): void;
  /** Ends requests in flight, closes every connection and timer. resolve() then rejects. */
  close(): Promise<void>;
}

/** @throws TenantResolverConfigError for an option that cannot work. */
export function createTenantResolver(options: TenantResolverOptions): TenantResolver {
  return new Resolver(resolveOptions(options));
}

class Resolver implements TenantResolver {
  readonly #notifier: Notifier;
  readonly #memory: MemoryTier;
  readonly #redis: RedisTier | undefined;
  readonly #subscriber: InvalidationSubscriber | undefined;
  readonly #controlPlane: ControlPlaneClient;
  readonly #flights = new SingleFlight<TenantResolution>();
  readonly #breaker: CircuitBreaker | undefined;
  readonly #staleDeadlineMs: number;
  #closing: Promise<void> | undefined;

  constructor(options: ResolvedResolverOptions) {
    const notifier = createNotifier(options.observer);
    this.#notifier = notifier;
    this.#staleDeadlineMs = options.staleWhileRevalidateMs;
    if (options.breakerFailures > 0) {
      this.#breaker = new CircuitBreaker({ failures: options.breakerFailures, openMs: options.breakerOpenMs, now: options.now });
    }
    this.#memory = new MemoryTier({
      ttlMs: options.memoryTtlMs,
      negativeTtlMs: options.negativeTtlMs,
      staleMaxAgeMs: options.staleMaxAgeMs,
      maxEntries: options.memoryMaxEntries,
      maxBytes: options.memoryMaxBytes,
      now: options.now,
    });
    this.#controlPlane = new ControlPlaneClient({
      url: options.controlPlaneUrl,
      token: options.controlPlaneToken,
      requestTimeoutMs: options.requestTimeoutMs,
      connectTimeoutMs: options.connectTimeoutMs,
      retries: options.retries,
      backoff: { baseMs: options.retryBaseDelayMs, maxMs: options.retryMaxDelayMs },
      connections: options.controlPlaneConnections,
      keepAliveTimeoutMs: options.keepAliveTimeoutMs,
      maxResponseBytes: options.maxResponseBytes,
      notifier,
    });
    if (options.redisUrl === undefined) return;
    const redis = {
      url: options.redisUrl,
      commandTimeoutMs: options.redisCommandTimeoutMs,
      connectTimeoutMs: options.redisConnectTimeoutMs,
      reconnect: { baseMs: 50, maxMs: options.redisReconnectMaxDelayMs },
      notifier,
    };
    this.#redis = new RedisTier({ ...redis, routeTtlMs: options.redisTtlMs, negativeTtlMs: options.negativeTtlMs });
    this.#subscriber = new InvalidationSubscriber({
      ...redis,
      onInvalidation: (message) => this.#invalidate(message),
      onSubscribed: () => this.#invalidateAll(),
    });
  }

  async resolve(tenantId: string, signal?: AbortSignal): Promise<TenantResolution> {
    signal?.throwIfAborted();
    if (this.#closing !== undefined) throw new TenantResolverClosedError();
    // No tenant has such an id (docs/architecture.md, step 5), and the control plane would answer 400.
    if (!TENANT_ID.test(tenantId)) return UNKNOWN_TENANT;
    const cached = this.#memory.fresh(tenantId);
    if (cached !== undefined) {
      this.#notifier.cacheRequest(CacheTier.Memory, hitResult(cached), tenantId);
      return cached;
    }
    this.#notifier.cacheRequest(CacheTier.Memory, CacheResult.Miss, tenantId);
    const filled = this.#flights.run(tenantId, (flight) => this.#fill(tenantId, flight), signal);
    const stale = this.#staleDeadlineMs > 0 ? this.#memory.stale(tenantId) : undefined;
    return stale === undefined ? filled : this.#freshOrStale(tenantId, filled, stale);
  }

  /**
   * An expired route while its refresh is under way: the refreshed answer if it comes within
   * the deadline, else the expired route. The refresh goes on and fills the tiers for the next
   * lookup. (While the breaker is open the refresh itself falls back to the route at once.)
   */
  async #freshOrStale(tenantId: string, filled: Promise<TenantResolution>, stale: StaleRoute): Promise<TenantResolution> {
    filled.catch(() => {});
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<'late'>((resolve) => (timer = setTimeout(() => resolve('late'), this.#staleDeadlineMs)));
    try {
      const first = await Promise.race([filled, late]);
      if (first !== 'late') return first;
    } finally {
      clearTimeout(timer);
    }
    return this.#serveStale(tenantId, stale, new ControlPlaneSlowError(this.#staleDeadlineMs));
  }

  isCached(tenantId: string): boolean {
    return this.#memory.fresh(tenantId) !== undefined || this.#memory.stale(tenantId) !== undefined;
  }

  get memory(): { entries: number; bytes: number } {
    return { entries: this.#memory.size, bytes: this.#memory.bytes };
  }

  async ready(signal?: AbortSignal): Promise<void> {
    if (this.#closing !== undefined) throw new TenantResolverClosedError();
    const all = Promise.all([this.#redis?.ready(), this.#subscriber?.ready()]).then(() => undefined);
    await (signal === undefined ? all : waitOrAbort(all, signal));
  }

  close(): Promise<void> {
    this.#closing ??= this.#close();
    return this.#closing;
  }

  async #close(): Promise<void> {
    this.#flights.abortAll(new TenantResolverClosedError());
    await Promise.all([this.#controlPlane.close(), this.#redis?.close(), this.#subscriber?.close()]);
  }

  /** One flight: Redis, then the control plane, then caching what it said. */
  async #fill(tenantId: string, flight: Flight): Promise<TenantResolution> {
    const shared = await this.#readRedis(tenantId);
    if (shared !== undefined) {
      if (!flight.superseded) this.#memory.set(tenantId, shared);
      return shared;
    }
    if (this.#breaker !== undefined && !this.#breaker.allow()) return this.#fallBack(tenantId, new ControlPlaneCircuitOpenError());
    let answer: RouteAnswer;
    try {
      flight.signal.throwIfAborted();
      answer = await this.#controlPlane.fetchRoute(tenantId, flight.signal);
    } catch (error) {
      // A request ended by a write or close() says nothing about the control plane's health.
      if (!flight.signal.aborted) this.#breaker?.failure();
      return this.#fallBack(tenantId, error as Error);
    }
    this.#breaker?.success();
    this.#notifier.cacheRequest(CacheTier.ControlPlane, hitResult(answer), tenantId);
    await this.#store(tenantId, answer, flight);
    return answer;
  }

  async #readRedis(tenantId: string): Promise<RouteAnswer | undefined> {
    if (this.#redis === undefined) return undefined;
    // Down: the outage was reported once when it began; a failed command per resolve adds nothing.
    if (!this.#redis.isReady) {
      this.#notifier.cacheRequest(CacheTier.Redis, CacheResult.Error, tenantId);
      return undefined;
    }
    try {
      const answer = await this.#redis.get(tenantId);
      this.#notifier.cacheRequest(CacheTier.Redis, answer === undefined ? CacheResult.Miss : hitResult(answer), tenantId);
      return answer;
    } catch (error) {
      if (this.#closing !== undefined) return undefined;
      this.#notifier.cacheRequest(CacheTier.Redis, CacheResult.Error, tenantId);
      this.#notifier.redisError({ operation: 'get', tenantId, error: error as Error });
      return undefined;
    }
  }

  /** The control plane failed: a stale route if one may stand in, else the unavailable error. */
  #fallBack(tenantId: string, error: Error): TenantResolution {
    if (this.#closing !== undefined) throw new TenantResolverClosedError();
    this.#notifier.cacheRequest(CacheTier.ControlPlane, CacheResult.Error, tenantId);
    const stale = this.#memory.stale(tenantId);
    if (stale === undefined) throw new TenantDirectoryUnavailableError({ cause: error });
    return this.#serveStale(tenantId, stale, error);
  }

  #serveStale(tenantId: string, stale: StaleRoute, error: Error): TenantResolution {
    this.#notifier.cacheRequest(CacheTier.Memory, CacheResult.Stale, tenantId);
    this.#notifier.staleServed({ tenantId, version: stale.route.version, ageSeconds: stale.ageMs / 1000, error });
    return { kind: 'found', route: stale.route, stale: true };
  }

  /**
   * Caches the control plane's answer, unless an invalidation came while it was on its way. A
   * route that Redis refuses (the floor is above it: a newer version exists) is not kept in
   * memory either. An "unknown" is always refused once the tenant has ever existed (version 0
   * under any floor), which says nothing about its age: memory keeps it.
   */
  async #store(tenantId: string, answer: RouteAnswer, flight: Flight): Promise<void> {
    if (flight.superseded) return;
    if (this.#redis?.isReady) {
      try {
        const stored = await this.#redis.fill(tenantId, answer);
        if (!stored && answer.kind === 'found') return;
      } catch (error) {
        if (this.#closing === undefined) this.#notifier.redisError({ operation: 'fill', tenantId, error: error as Error });
      }
    }
    if (!flight.superseded && this.#closing === undefined) this.#memory.set(tenantId, answer);
  }

  requestWake(tenantId: string, signal: AbortSignal): Promise<'active' | 'waking' | 'unknown'> {
    return this.#controlPlane.requestWake(tenantId, signal);
  }

  forget(tenantId: string): void {
    this.#memory.delete(tenantId);
    this.#flights.supersede(tenantId);
  }

  #invalidate(message: InvalidationMessage): void {
    this.#memory.delete(message.id);
    this.#flights.supersede(message.id);
    this.#notifier.invalidation({ tenantId: message.id, version: message.version });
  }

  #invalidateAll(): void {
    this.#memory.expireAll();
    this.#flights.supersedeAll();
    this.#notifier.invalidation({ tenantId: null, version: null });
  }
}

function hitResult(answer: RouteAnswer): CacheResult {
  return answer.kind === 'found' ? CacheResult.Hit : CacheResult.NegativeHit;
}
