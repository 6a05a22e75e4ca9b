// Cancel keys shared by every gateway of a fleet through Redis. A client's CancelRequest opens
// a new connection, which the load balancer may send to any gateway: each key is kept in this process (the local store) and in Redis, under
// `tenantgate:cancel:<pid>:<secret hex>`, with a TTL this process refreshes while the session
// lives, so a gateway that dies leaves no key behind for longer than the TTL. A lookup asks the
// local store first, then Redis. Without Redis the local store still answers; Redis errors are
// reported to `onError`, never thrown.
// Map: docs/architecture.md, "Cancel routing".
import type { Redis } from 'ioredis';
import { cancelKeyId, type CancelEntry, type CancelKey, type CancelKeyStore } from './registry.ts';
import { fromWire, toWire, type WireEntry } from './cluster-store.ts';

export const CANCEL_KEY_PREFIX = 'tenantgate:cancel:';
/** How long a key outlives the last refresh of the gateway that holds its session. */
export const CANCEL_KEY_TTL_MS = 60_000;

export function redisCancelKey(key: CancelKey): string {
  return CANCEL_KEY_PREFIX + cancelKeyId(key);
}

export interface RedisCancelKeyStoreOptions {
  readonly redis: Redis;
  /** This process's keys (memory, or the workers' cluster store). */
  readonly local: CancelKeyStore;
  readonly ttlMs?: number;
  /** A Redis command failed; the store carried on without it. */
  readonly onError?: (operation: 'add' | 'get' | 'delete' | 'refresh', error: Error) => void;
}

export class RedisCancelKeyStore implements CancelKeyStore {
  readonly #redis: Redis;
  readonly #local: CancelKeyStore;
  readonly #ttlMs: number;
  readonly #onError: NonNullable<RedisCancelKeyStoreOptions['onError']>;
  /** This process's live sessions, by Redis key: refreshed there, and put back after Redis lost them. */
  readonly #own = new Map<string, CancelEntry>();
  readonly #timer: NodeJS.Timeout;

  constructor(options: RedisCancelKeyStoreOptions) {
    this.#redis = options.redis;
    this.#local = options.local;
    this.#ttlMs = options.ttlMs ?? CANCEL_KEY_TTL_MS;
    this.#onError = options.onError ?? (() => {});
    this.#timer = setInterval(() => void this.#refresh(), Math.max(1, Math.floor(this.#ttlMs / 3)));
    this.#timer.unref();
  }

  async add(entry: CancelEntry): Promise<boolean> {
    if (!(await this.#local.add(entry))) return false;
    const name = redisCancelKey(entry);
    try {
      const stored = await this.#redis.set(name, JSON.stringify(toWire(entry)), 'PX', this.#ttlMs, 'NX');
      if (stored === null) {
        // Another gateway holds this key: draw another.
        await this.#local.delete(entry);
        return false;
      }
      this.#own.set(name, entry);
    } catch (error) {
      // Redis down: the key works on this gateway only.
      this.#onError('add', error as Error);
    }
    return true;
  }

  async get(key: CancelKey): Promise<CancelEntry | undefined> {
    const local = await this.#local.get(key);
    if (local !== undefined) return local;
    try {
      const value = await this.#redis.get(redisCancelKey(key));
      return value === null ? undefined : fromWire(JSON.parse(value) as WireEntry);
    } catch (error) {
      this.#onError('get', error as Error);
      return undefined;
    }
  }

  async delete(key: CancelKey): Promise<void> {
    await this.#local.delete(key);
    const name = redisCancelKey(key);
    if (!this.#own.delete(name)) return;
    try {
      await this.#redis.del(name);
    } catch (error) {
      this.#onError('delete', error as Error);
    }
  }

  /** Stops refreshing, closes the local store and the Redis connection (keys expire by their TTL). */
  async close(): Promise<void> {
    clearInterval(this.#timer);
    await this.#local.close();
    this.#redis.disconnect();
  }

  async #refresh(): Promise<void> {
    if (this.#own.size === 0) return;
    const entries = [...this.#own];
    const pipeline = this.#redis.pipeline();
    // Written whole, not just given a new TTL: Redis may have restarted empty since. The key is
    // this process's (it was set with NX), so nobody else's entry is overwritten.
    for (const [name, entry] of entries) pipeline.set(name, JSON.stringify(toWire(entry)), 'PX', this.#ttlMs);
    try {
      await pipeline.exec();
    } catch (error) {
      this.#onError('refresh', error as Error);
    }
  }
}
