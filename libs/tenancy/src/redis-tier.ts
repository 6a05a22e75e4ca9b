// The shared tier: every gateway reads the same route keys (route-cache.ts). Values are written
// only through FILL_ROUTE_SCRIPT, which refuses a value older than the floor the control plane
// sets on each write, so a fill that raced a write cannot bring the old route back.
// Every method may throw (Redis down, timed out, garbage under a key): the resolver carries on
// without this tier.
import type { Redis } from 'ioredis';
import type { BackoffPolicy } from './backoff.ts';
import type { Notifier } from './observer.ts';
import { RedisConnection } from './redis-connection.ts';
import { answerVersion, decodeRouteAnswer, encodeRouteAnswer, type RouteAnswer } from './route-answer.ts';
import { FILL_ROUTE_SCRIPT, routeFloorKey, routeKey } from './route-cache.ts';
import { redisSpan } from './redis-span.ts';

export interface RedisTierOptions {
  readonly url: string;
  readonly routeTtlMs: number;
  readonly negativeTtlMs: number;
  readonly commandTimeoutMs: number;
  readonly connectTimeoutMs: number;
  readonly reconnect: BackoffPolicy;
  readonly notifier: Notifier;
}

interface FillCommand {
  /** FILL_ROUTE_SCRIPT by EVALSHA (ioredis falls back to EVAL once per connection). */
  tenantgateFillRoute(routeKey: string, floorKey: string, version: number, value: string, ttlMs: number): Promise<number>;
}

export class RedisTier {
  readonly #options: RedisTierOptions;
  readonly #connection: RedisConnection;
  readonly #client: Redis & FillCommand;

  constructor(options: RedisTierOptions) {
    this.#options = options;
    this.#connection = new RedisConnection({ ...options, role: 'commands' });
    this.#connection.client.defineCommand('tenantgateFillRoute', { numberOfKeys: 2, lua: FILL_ROUTE_SCRIPT });
    this.#client = this.#connection.client as Redis & FillCommand;
  }

  /** The cached answer, or undefined when there is none. */
  async get(tenantId: string): Promise<RouteAnswer | undefined> {
    const raw = await redisSpan('GET', () => this.#client.get(routeKey(tenantId)));
    return raw === null ? undefined : decodeRouteAnswer(raw, tenantId);
  }

  /** Stores the answer unless the floor says it is outdated; false when refused. */
  async fill(tenantId: string, answer: RouteAnswer): Promise<boolean> {
    const ttlMs = answer.kind === 'found' ? this.#options.routeTtlMs : this.#options.negativeTtlMs;
    const stored = await redisSpan('EVALSHA', () =>
      this.#client.tenantgateFillRoute(
        routeKey(tenantId),
        routeFloorKey(tenantId),
        answerVersion(answer),
        encodeRouteAnswer(answer),
        ttlMs,
      ),
    );
    return stored === 1;
  }

  /** False while the connection is down (already reported once, by the observer's redisConnection). */
  get isReady(): boolean {
    return this.#connection.isReady;
  }

  ready(): Promise<void> {
    return this.#connection.ready();
  }

  close(): Promise<void> {
    return this.#connection.close();
  }
}
