// The Redis client the control plane publishes invalidations with. Commands fail at once while
// the connection is down (no offline queue) instead of piling up in memory: the outbox in the
// database is the queue, and the publisher retries from it once Redis is back.
import { Redis } from 'ioredis';

export interface RedisClientOptions {
  /** Longest pause between reconnection attempts; default 2000 ms. */
  readonly maxReconnectDelayMs?: number;
}

export function createRedisClient(url: string, options: RedisClientOptions = {}): Redis {
  const maxDelay = options.maxReconnectDelayMs ?? 2000;
  const client = new Redis(url, {
    enableOfflineQueue: false,
    maxRetriesPerRequest: 0,
    commandTimeout: 2000,
    connectTimeout: 2000,
    retryStrategy: (attempt) => Math.min(attempt * 100, maxDelay),
  });
  // An 'error' with no listener throws. The publisher listens while it runs and /readyz pings;
  // this one covers the rest of the client's life (a reconnect's ready check failing before the
  // publisher starts or after it stopped, during shutdown), which must never end the process.
  client.on('error', () => {});
  return client;
}
