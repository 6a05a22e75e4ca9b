// The options of createTenantResolver, their defaults, and the checks that turn a bad value into
// one TenantResolverConfigError naming the option (never the token's value).
import { performance } from 'node:perf_hooks';
import { TenantResolverConfigError } from './errors.ts';
import type { TenantResolverObserver } from './observer.ts';

export interface TenantResolverOptions {
  /** Base URL of the control plane; routes are read at `<base>/v1/routes/:id`. */
  readonly controlPlaneUrl: string | URL;
  /** A gateway token (read-only on routes), sent as `Authorization: Bearer`. */
  readonly controlPlaneToken: string;
  /** `redis://` or `rediss://`. Without it: memory, then the control plane, and no invalidations. */
  readonly redisUrl?: string;

  /** How long a route is served from memory without asking Redis. Default 5 s; 0 turns memory caching off. */
  readonly memoryTtlMs?: number;
  /** How long a route lives in Redis. Default 5 min. */
  readonly redisTtlMs?: number;
  /** How long "no such tenant" is cached, in memory and in Redis. Default 2 s. */
  readonly negativeTtlMs?: number;
  /** How long after it was stored a route may still be served when fresh data cannot be had. Default 10 min; 0: never. */
  readonly staleMaxAgeMs?: number;
  /** Tenants held in memory (least recently used go first). Default 10,000. */
  readonly memoryMaxEntries?: number;
  /**
   * Bytes of routes held in memory, as their JSON length, whatever their number: a tenant with
   * thousands of roles counts for what it weighs. Default 64 MiB; a larger route is not kept.
   */
  readonly memoryMaxBytes?: number;

  /** One control plane attempt, from sending to the end of the body. Default 2 s. */
  readonly requestTimeoutMs?: number;
  /** Establishing a TCP (and TLS) connection to the control plane. Default 1 s. */
  readonly connectTimeoutMs?: number;
  /** Retries after a transport failure (never after an HTTP status). Default 2. */
  readonly retries?: number;
  /** Full-jitter backoff between retries: window base × 2^n, capped. Defaults 50 ms and 1 s. */
  readonly retryBaseDelayMs?: number;
  readonly retryMaxDelayMs?: number;
  /**
   * How long a lookup whose memory entry has expired waits for fresh data before the expired
   * route is served (and the refresh goes on in the background). 0: wait (stale-if-error only).
   */
  readonly staleWhileRevalidateMs?: number;
  /** Control-plane lookups failed in a row that open the circuit breaker; 0: no breaker. */
  readonly breakerFailures?: number;
  /** How long the open breaker sends no request before one probe. */
  readonly breakerOpenMs?: number;
  /** Keep-alive connections to the control plane, at most. Default 16. */
  readonly controlPlaneConnections?: number;
  /** Idle keep-alive connections close after this (unless the server says less). Default 10 s. */
  readonly keepAliveTimeoutMs?: number;
  /** A larger route response is an error. Default 4 MiB. */
  readonly maxResponseBytes?: number;

  /** A Redis command slower than this fails (and the resolver moves on). Default 200 ms. */
  readonly redisCommandTimeoutMs?: number;
  /** Default 1 s. */
  readonly redisConnectTimeoutMs?: number;
  /** Reconnects back off with full jitter from 50 ms up to this. Default 2 s. */
  readonly redisReconnectMaxDelayMs?: number;

  /** Callbacks for metrics and logs. */
  readonly observer?: TenantResolverObserver;
  /** Monotonic milliseconds for the memory tier's TTLs; tests pass a clock they move. Default performance.now. */
  readonly now?: () => number;
}

export const RESOLVER_DEFAULTS = {
  memoryTtlMs: 5_000,
  redisTtlMs: 300_000,
  negativeTtlMs: 2_000,
  staleMaxAgeMs: 600_000,
  memoryMaxEntries: 10_000,
  memoryMaxBytes: 64 * 1024 * 1024,
  requestTimeoutMs: 2_000,
  connectTimeoutMs: 1_000,
  retries: 2,
  retryBaseDelayMs: 50,
  retryMaxDelayMs: 1_000,
  staleWhileRevalidateMs: 20,
  breakerFailures: 5,
  breakerOpenMs: 5_000,
  controlPlaneConnections: 16,
  keepAliveTimeoutMs: 10_000,
  maxResponseBytes: 4 * 1024 * 1024,
  redisCommandTimeoutMs: 200,
  redisConnectTimeoutMs: 1_000,
  redisReconnectMaxDelayMs: 2_000,
} as const;

type Numeric = keyof typeof RESOLVER_DEFAULTS;

export type ResolvedResolverOptions = { readonly [K in Numeric]: number } & {
  readonly controlPlaneUrl: URL;
  readonly controlPlaneToken: string;
  readonly redisUrl: string | undefined;
  readonly observer: TenantResolverObserver | undefined;
  readonly now: () => number;
};

/** The least each number may be: 0 where 0 means "off", 1 where a zero would break something. */
const MINIMUM: { readonly [K in Numeric]: number } = {
  memoryTtlMs: 0,
  redisTtlMs: 1,
  negativeTtlMs: 1,
  staleMaxAgeMs: 0,
  memoryMaxEntries: 1,
  memoryMaxBytes: 1,
  requestTimeoutMs: 1,
  connectTimeoutMs: 1,
  retries: 0,
  retryBaseDelayMs: 0,
  retryMaxDelayMs: 0,
  staleWhileRevalidateMs: 0,
  breakerFailures: 0,
  breakerOpenMs: 1,
  controlPlaneConnections: 1,
  keepAliveTimeoutMs: 1,
  maxResponseBytes: 1,
  redisCommandTimeoutMs: 1,
  redisConnectTimeoutMs: 1,
  redisReconnectMaxDelayMs: 0,
};

/** @throws TenantResolverConfigError */
export function resolveOptions(options: TenantResolverOptions): ResolvedResolverOptions {
  const numbers = {} as { [K in Numeric]: number };
  for (const name of Object.keys(RESOLVER_DEFAULTS) as Numeric[]) {
    const value = options[name] ?? RESOLVER_DEFAULTS[name];
    if (!Number.isSafeInteger(value) || value < MINIMUM[name]) {
      throw new TenantResolverConfigError(`${name} must be a whole number of at least ${MINIMUM[name]}`);
    }
    numbers[name] = value;
  }
  return {
    ...numbers,
    controlPlaneUrl: controlPlaneUrl(options.controlPlaneUrl),
    controlPlaneToken: token(options.controlPlaneToken),
    redisUrl: redisUrl(options.redisUrl),
    observer: options.observer,
    now: options.now ?? (() => performance.now()),
  };
}

function controlPlaneUrl(value: string | URL): URL {
  const url = URL.canParse(String(value)) ? new URL(String(value)) : undefined;
  if (url === undefined || (url.protocol !== 'http:' && url.protocol !== 'https:')) {
    throw new TenantResolverConfigError('controlPlaneUrl must be an http:// or https:// URL');
  }
  return url;
}

function token(value: string): string {
  // A line break would let the token end the header and start another.
  if (typeof value !== 'string' || value.length === 0 || /[\r\n]/.test(value)) {
    throw new TenantResolverConfigError('controlPlaneToken must be a non-empty string on one line');
  }
  return value;
}

function redisUrl(value: string | undefined): string | undefined {
  if (value === undefined) return undefined;
  const url = URL.canParse(value) ? new URL(value) : undefined;
  if (url === undefined || (url.protocol !== 'redis:' && url.protocol !== 'rediss:')) {
    throw new TenantResolverConfigError('redisUrl must be a redis:// or rediss:// URL');
  }
  return value;
}
