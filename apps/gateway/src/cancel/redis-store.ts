// Cancel keys shared by every gateway of a fleet through Redis. A client's CancelRequest opens
// a new connection, which the load balancer may send to any gateway: each key is kept in this process (the local store) and in Redis, under
// `tenantgate:cancel:<pid>:<secret hex>`, with a TTL this process refreshes while the session
// lives, so a gateway that dies leaves no key behind for longer than the TTL. A lookup asks the
// local store first, then Redis. Without Redis the local store still answers; Redis errors are
// reported to `onError`, and a key found in neither throws CancelStoreUnavailable, so the miss
// is counted apart from an unknown key.
// Map: docs/architecture.md, "Cancel routing".
import type { Redis } from 'ioredis';
import { redisSpan } from '@tenantgate/tenancy';
import { cancelKeyId, CancelStoreUnavailable, type CancelEntry, type CancelKey, type CancelKeyStore } from './registry.ts';
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
  /**
   * This process's live sessions, by Redis key. `confirmed`: Redis took the key with NX, so it is
   * ours there; a key added while Redis was down is offered with NX again at each refresh.
   */
  readonly #own = new Map<string, { readonly entry: CancelEntry; confirmed: boolean }>();
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
      const stored = await redisSpan('SET', () => this.#redis.set(name, JSON.stringify(toWire(entry)), 'PX', this.#ttlMs, 'NX'));
      if (stored === null) {
        // Another gateway holds this key: draw another.
        await this.#local.delete(entry);
        return false;
      }
      this.#own.set(name, { entry, confirmed: true });
    } catch (error) {
      // Redis down: the key works on this gateway only until a refresh gets it into Redis.
      this.#own.set(name, { entry, confirmed: false });
      this.#onError('add', error as Error);
    }
    return true;
  }

  async get(key: CancelKey): Promise<CancelEntry | undefined> {
    const local = await this.#local.get(key);
    if (local !== undefined) return local;
    try {
      const value = await redisSpan('GET', () => this.#redis.get(redisCancelKey(key)));
      return value === null ? undefined : fromWire(JSON.parse(value) as WireEntry);
    } catch (error) {
      this.#onError('get', error as Error);
      throw new CancelStoreUnavailable({ cause: error });
    }
  }

  async delete(key: CancelKey): Promise<void> {
    await this.#local.delete(key);
    const name = redisCancelKey(key);
    const own = this.#own.get(name);
    this.#own.delete(name);
    // An unconfirmed key may be another gateway's in Redis: only ours is deleted.
    if (own?.confirmed !== true) return;
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
    const owned = [...this.#own];
    const pipeline = this.#redis.pipeline();
    // Written whole, not just given a new TTL: Redis may have restarted empty since. A confirmed
    // key is ours and is overwritten; an unconfirmed one is offered with NX, never taking another's.
    for (const [name, { entry, confirmed }] of owned) {
      const value = JSON.stringify(toWire(entry));
      if (confirmed) pipeline.set(name, value, 'PX', this.#ttlMs);
      else pipeline.set(name, value, 'PX', this.#ttlMs, 'NX');
    }
    try {
      const results = (await pipeline.exec()) ?? [];
      owned.forEach(([name], i) => {
        const own = this.#own.get(name);
        if (own !== undefined && results[i]?.[0] === null && results[i]?.[1] === 'OK') own.confirmed = true;
      });
    } catch (error) {
      this.#onError('refresh', error as Error);
    }
  }
}
