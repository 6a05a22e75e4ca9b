// A tenant's connection cap and connect rate, held for the whole fleet in Redis
// (docs/architecture.md, step 7). Every gateway process admits through one script that takes a
// token from the tenant's connect-rate bucket and a lease on its connection cap in a single
// round trip. A lease is one member of a sorted set scored by its expiry; the process that
// holds it renews its leases every third of the lease time and removes each when its session
// ends, so the capacity of a process that dies comes back once its leases expire. Both keys of
// a tenant share a hash tag, so the script runs on one node of a Redis Cluster too.
//
// Redis unreachable: acquire() says so (`unavailable`) and the caller enforces the limits on
// its own; the leases of sessions admitted meanwhile are written at the first renewal that
// reaches Redis, so the fleet counts them from then on.
import { randomUUID } from 'node:crypto';
import type { Redis } from 'ioredis';
import { connectsKey, leasesKey, redisSpan } from '@tenantgate/tenancy';

export const FLEET_LEASE_MS = 30_000;
/** After a failed command, acquire() answers `unavailable` without asking Redis for this long. */
export const FLEET_RETRY_MS = 1_000;

export { connectsKey, leasesKey } from '@tenantgate/tenancy';

// Redis's own clock, so that gateways whose clocks differ agree on when a lease expires.
const REDIS_NOW_MS = `local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)`;

/**
 * KEYS: connects, leases. ARGV: connects per second (also the bucket's size), max connections,
 * lease ms, member. Returns {0, active} admitted, {1, 0} over the rate, {2, active} over the cap.
 * A refusal for the cap has spent its token, as the process-local admission does.
 */
export const ADMIT_SCRIPT = `${REDIS_NOW_MS}
local rate = tonumber(ARGV[1])
local max = tonumber(ARGV[2])
local lease = tonumber(ARGV[3])
local bucket = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens = tonumber(bucket[1]) or rate
local at = tonumber(bucket[2]) or now
tokens = math.min(rate, tokens + math.max(0, now - at) * rate / 1000)
local refill = math.ceil(1000 * (rate + 1) / rate) + 1000
if tokens < 1 then
  redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'at', now)
  redis.call('PEXPIRE', KEYS[1], refill)
  return {1, 0}
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens - 1), 'at', now)
redis.call('PEXPIRE', KEYS[1], refill)
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
local active = redis.call('ZCARD', KEYS[2])
if active >= max then return {2, active} end
redis.call('ZADD', KEYS[2], now + lease, ARGV[4])
redis.call('PEXPIRE', KEYS[2], 2 * lease)
return {0, active + 1}`;

/** KEYS: leases. ARGV: lease ms, then the members to renew (added again if Redis lost them). */
export const RENEW_SCRIPT = `${REDIS_NOW_MS}
local lease = tonumber(ARGV[1])
for i = 2, #ARGV do redis.call('ZADD', KEYS[1], now + lease, ARGV[i]) end
redis.call('PEXPIRE', KEYS[1], 2 * lease)
return #ARGV - 1`;

export interface TenantLimits {
  readonly maxConnections: number;
  readonly connectsPerSecond: number;
}

/** A session's hold on its tenant's connection cap; release it once, when the session ends. */
export interface FleetLease {
  release(): void;
}

export type FleetDecision =
  | { readonly kind: 'admitted'; readonly lease: FleetLease }
  | { readonly kind: 'refused'; readonly limit: 'rate' | 'cap' }
  /** Redis could not be asked: the caller decides alone; the lease reaches Redis once it is back. */
  | { readonly kind: 'unavailable'; readonly lease: FleetLease };

export interface FleetLimits {
  acquire(tenantId: string, limits: TenantLimits): Promise<FleetDecision>;
  close(): Promise<void>;
}

export interface RedisFleetLimitsOptions {
  readonly redis: Redis;
  readonly leaseMs?: number;
  /** Called once when Redis stops answering, with the error. */
  readonly onLost?: (error: Error) => void;
  /** Called once when Redis answers again after onLost. */
  readonly onRegained?: () => void;
  /** Milliseconds since some origin; injectable so tests need no clock. */
  readonly now?: () => number;
}

interface ScriptCommands {
  tenantgateAdmit(connects: string, leases: string, rate: number, max: number, leaseMs: number, member: string): Promise<[number, number]>;
  tenantgateRenew(leases: string, leaseMs: number, ...members: string[]): Promise<number>;
}

export class RedisFleetLimits implements FleetLimits {
  readonly #redis: Redis & ScriptCommands;
  readonly #leaseMs: number;
  readonly #onLost: (error: Error) => void;
  readonly #onRegained: () => void;
  readonly #now: () => number;
  /** This process's part of every lease member; a new one per process, so members never collide. */
  readonly #owner = randomUUID();
  #sequence = 0;
  /** This process's live leases, by tenant; renewed together. */
  readonly #leases = new Map<string, Set<string>>();
  readonly #timer: NodeJS.Timeout;
  #lost = false;
  #retryAt = 0;

  constructor(options: RedisFleetLimitsOptions) {
    this.#leaseMs = options.leaseMs ?? FLEET_LEASE_MS;
    this.#onLost = options.onLost ?? (() => {});
    this.#onRegained = options.onRegained ?? (() => {});
    this.#now = options.now ?? (() => performance.now());
    options.redis.defineCommand('tenantgateAdmit', { numberOfKeys: 2, lua: ADMIT_SCRIPT });
    options.redis.defineCommand('tenantgateRenew', { numberOfKeys: 1, lua: RENEW_SCRIPT });
    this.#redis = options.redis as Redis & ScriptCommands;
    this.#timer = setInterval(() => void this.#renew(), Math.max(1, Math.floor(this.#leaseMs / 3)));
    this.#timer.unref();
  }

  /** True while Redis does not answer and each process enforces the limits alone. */
  get lost(): boolean {
    return this.#lost;
  }

  async acquire(tenantId: string, limits: TenantLimits): Promise<FleetDecision> {
    const member = `${this.#owner}:${++this.#sequence}`;
    if (this.#lost && this.#now() < this.#retryAt) return { kind: 'unavailable', lease: this.#hold(tenantId, member) };
    let answer: [number, number];
    try {
      answer = await redisSpan('EVALSHA', () =>
        this.#redis.tenantgateAdmit(
          connectsKey(tenantId),
          leasesKey(tenantId),
          limits.connectsPerSecond,
          limits.maxConnections,
          this.#leaseMs,
          member,
        ),
      );
    } catch (error) {
      this.#failed(error as Error);
      return { kind: 'unavailable', lease: this.#hold(tenantId, member) };
    }
    this.#answered();
    switch (answer[0]) {
      case 0:
        return { kind: 'admitted', lease: this.#hold(tenantId, member) };
      case 1:
        return { kind: 'refused', limit: 'rate' };
      default:
        return { kind: 'refused', limit: 'cap' };
    }
  }

  /**
   * Stops renewing, gives back the leases still held (a gateway stopping in order frees its
   * sessions' capacity at once; only one that dies leaves it to the lease time), and closes the
   * Redis connection.
   */
  async close(): Promise<void> {
    clearInterval(this.#timer);
    if (this.#leases.size > 0) {
      const pipeline = this.#redis.pipeline();
      for (const [tenantId, members] of this.#leases) pipeline.zrem(leasesKey(tenantId), ...members);
      this.#leases.clear();
      await pipeline.exec().catch(() => {});
    }
    this.#redis.disconnect();
  }

  #hold(tenantId: string, member: string): FleetLease {
    let members = this.#leases.get(tenantId);
    if (members === undefined) this.#leases.set(tenantId, (members = new Set()));
    members.add(member);
    let released = false;
    return {
      release: () => {
        if (released) return;
        released = true;
        members.delete(member);
        if (members.size === 0 && this.#leases.get(tenantId) === members) this.#leases.delete(tenantId);
        // A lease Redis does not have (or that this fails to remove) expires by itself.
        this.#redis.zrem(leasesKey(tenantId), member).catch(() => {});
      },
    };
  }

  async #renew(): Promise<void> {
    if (this.#leases.size === 0) {
      // Nothing to renew, but a lost fleet view is probed, so the gauge clears without waiting for a client.
      if (this.#lost)
        await this.#redis.ping().then(
          () => this.#answered(),
          (error: Error) => this.#failed(error),
        );
      return;
    }
    const pipeline = this.#redis.pipeline() as ReturnType<Redis['pipeline']> & {
      tenantgateRenew(leases: string, leaseMs: number, ...members: string[]): unknown;
    };
    for (const [tenantId, members] of this.#leases) pipeline.tenantgateRenew(leasesKey(tenantId), this.#leaseMs, ...members);
    try {
      const results = (await pipeline.exec()) ?? [];
      const failure = results.find(([error]) => error !== null)?.[0];
      if (failure) throw failure;
    } catch (error) {
      this.#failed(error as Error);
      return;
    }
    this.#answered();
  }

  #failed(error: Error): void {
    this.#retryAt = this.#now() + FLEET_RETRY_MS;
    if (this.#lost) return;
    this.#lost = true;
    this.#onLost(error);
  }

  #answered(): void {
    if (!this.#lost) return;
    this.#lost = false;
    this.#onRegained();
    // The leases taken while Redis was away go in now, not at the next renewal.
    void this.#renew();
  }
}
