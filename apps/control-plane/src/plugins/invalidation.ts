// Publishing invalidations to Redis after every committed write (see invalidation.ts), and the
// state of that connection for /readyz. Without Redis there is nothing to publish.
import fp from 'fastify-plugin';
import type { FastifyPluginAsync } from 'fastify';
import type { Redis } from 'ioredis';
import { InvalidationPublisher } from '../invalidation.ts';
import { settleWithin } from '../deadline.ts';

export const RedisState = {
  Up: 'up',
  Down: 'down',
  NotConfigured: 'not configured',
} as const;
export type RedisState = (typeof RedisState)[keyof typeof RedisState];

export interface Invalidations {
  /**
   * A write was committed: publish what the outbox holds, and wait (a bounded time) until it
   * reached Redis, so gateways drop the old route before the client hears of the change. With
   * Redis down it returns at once: the outbox keeps the rows and the publisher retries.
   */
  publish(): Promise<void>;
  /** Whether Redis answers (PING within the time given). */
  redisState(timeoutMs: number): Promise<RedisState>;
}

declare module 'fastify' {
  interface FastifyInstance {
    invalidations: Invalidations;
  }
}

export interface InvalidationPluginOptions {
  /** Absent: no Redis configured, nothing is published. The caller owns (and closes) it. */
  readonly redis?: Redis;
  readonly minRetryDelayMs?: number;
  readonly maxRetryDelayMs?: number;
  readonly pollIntervalMs?: number;
}

/** Longest a write's response waits for its invalidation to reach Redis. */
const PUBLISH_WAIT_MS = 1000;

const invalidation: FastifyPluginAsync<InvalidationPluginOptions> = async (app, options) => {
  const { redis } = options;
  if (redis === undefined) {
    app.decorate('invalidations', { publish: async () => {}, redisState: async () => RedisState.NotConfigured });
    return;
  }
  const publisher = new InvalidationPublisher({
    store: app.store,
    redis,
    logger: app.log.child({ component: 'invalidation' }),
    onPublished: (count) => app.metrics.invalidationsPublished.inc(count),
    onFailure: () => app.metrics.invalidationFailures.inc(),
    minRetryDelayMs: options.minRetryDelayMs,
    maxRetryDelayMs: options.maxRetryDelayMs,
    pollIntervalMs: options.pollIntervalMs,
  });
  app.decorate('invalidations', {
    publish: () => publisher.flush(PUBLISH_WAIT_MS),
    redisState: (timeoutMs: number) => pingRedis(redis, timeoutMs),
  });
  app.addHook('onReady', async () => publisher.start());
  app.addHook('onClose', async () => publisher.close());
};

async function pingRedis(redis: Redis, timeoutMs: number): Promise<RedisState> {
  if (redis.status !== 'ready') return RedisState.Down;
  return settleWithin(
    redis.ping().then(() => RedisState.Up),
    timeoutMs,
    RedisState.Down,
  );
}

export default fp(invalidation, { name: 'invalidation', fastify: '5.x', dependencies: ['store', 'metrics'] });
