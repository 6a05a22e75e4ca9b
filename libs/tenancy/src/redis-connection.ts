// One ioredis connection of the resolver, set up to fail fast: no offline queue (a command while
// disconnected fails at once instead of waiting for a reconnect), no retry of commands cut off by
// a disconnect, a short command timeout. ioredis reconnects in the background with full-jitter
// backoff. State changes go to the observer once per change, not once per reconnect attempt.
import { once } from 'node:events';
import { Redis } from 'ioredis';
import { fullJitterDelay, type BackoffPolicy } from './backoff.ts';
import { TenantResolverClosedError } from './errors.ts';
import { RedisConnectionState, type Notifier, type RedisConnectionRole } from './observer.ts';

export interface RedisConnectionOptions {
  readonly url: string;
  readonly role: RedisConnectionRole;
  readonly commandTimeoutMs: number;
  readonly connectTimeoutMs: number;
  readonly reconnect: BackoffPolicy;
  readonly notifier: Notifier;
  /**
   * When false, the owner decides when the connection is ready (the subscriber: once it has
   * subscribed) and calls markReady(). Default true: ready when ioredis says so.
   */
  readonly readyOnConnect?: boolean;
}

/** Reconnect attempts never come closer together than this, whatever the jitter draws. */
const MIN_RECONNECT_DELAY_MS = 10;

export class RedisConnection {
  readonly client: Redis;
  readonly #options: RedisConnectionOptions;
  #state: RedisConnectionState | undefined;
  #lastError: Error | undefined;
  #closing: Promise<void> | undefined;
  readonly #readyWaiters = new Set<{ resolve: () => void; reject: (error: Error) => void }>();

  constructor(options: RedisConnectionOptions) {
    this.#options = options;
    this.client = new Redis(options.url, {
      enableOfflineQueue: false,
      maxRetriesPerRequest: 0,
      autoResendUnfulfilledCommands: false,
      autoResubscribe: false,
      commandTimeout: options.commandTimeoutMs,
      connectTimeout: options.connectTimeoutMs,
      connectionName: `tenantgate-resolver-${options.role}`,
      retryStrategy: (times) => Math.max(MIN_RECONNECT_DELAY_MS, fullJitterDelay(times - 1, options.reconnect)),
    });
    // Every failed attempt emits 'error'; what matters (and is reported) is the outage, on 'close'.
    this.client.on('error', (error: Error) => {
      this.#lastError = error;
    });
    this.client.on('close', () => this.#set(RedisConnectionState.Down));
    if (options.readyOnConnect ?? true) this.client.on('ready', () => this.markReady());
  }

  /** True from close() on. */
  get isClosing(): boolean {
    return this.#closing !== undefined;
  }

  get isReady(): boolean {
    return this.#state === RedisConnectionState.Ready;
  }

  markReady(): void {
    this.#set(RedisConnectionState.Ready);
    for (const waiter of this.#readyWaiters) waiter.resolve();
    this.#readyWaiters.clear();
  }

  /** Resolves once the connection is ready; rejects if it is closed first. */
  ready(): Promise<void> {
    if (this.#closing !== undefined) return Promise.reject(new TenantResolverClosedError());
    if (this.isReady) return Promise.resolve();
    return new Promise((resolve, reject) => this.#readyWaiters.add({ resolve, reject }));
  }

  /** Disconnects now (pending commands fail) and stops reconnecting. */
  close(): Promise<void> {
    this.#closing ??= this.#close();
    return this.#closing;
  }

  async #close(): Promise<void> {
    for (const waiter of this.#readyWaiters) waiter.reject(new TenantResolverClosedError());
    this.#readyWaiters.clear();
    const status = this.client.status;
    // Between attempts there is no socket, only the reconnect timer that disconnect() clears, and
    // ioredis emits no 'end' then.
    const open = status !== 'end' && status !== 'reconnecting' && status !== 'wait';
    const ended = open ? once(this.client, 'end') : undefined;
    this.client.disconnect();
    await ended;
    this.#state = RedisConnectionState.Closed;
    this.#options.notifier.redisConnection({ role: this.#options.role, state: RedisConnectionState.Closed });
  }

  #set(state: RedisConnectionState): void {
    if (this.#closing !== undefined || state === this.#state) return;
    this.#state = state;
    const error = state === RedisConnectionState.Down ? this.#lastError : undefined;
    this.#lastError = undefined;
    this.#options.notifier.redisConnection({ role: this.#options.role, state, ...(error && { error }) });
  }
}
