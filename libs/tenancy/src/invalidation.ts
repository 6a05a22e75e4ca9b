// The resolver's ear on INVALIDATION_CHANNEL, on a connection of its own (a subscribed
// connection can run no other command). Each message names a tenant whose record changed.
// Messages published while this connection was down are lost, so every successful SUBSCRIBE
// (the first one too: fills may have started before it) is reported as `onSubscribed`, and the
// resolver then treats everything it holds as possibly outdated.
import type { BackoffPolicy } from './backoff.ts';
import { RedisConnectionRole, type Notifier } from './observer.ts';
import { RedisConnection } from './redis-connection.ts';
import { decodeInvalidation, INVALIDATION_CHANNEL, type InvalidationMessage } from './route-cache.ts';
import { InvalidationMessageError } from './errors.ts';

export interface InvalidationSubscriberOptions {
  readonly url: string;
  readonly commandTimeoutMs: number;
  readonly connectTimeoutMs: number;
  readonly reconnect: BackoffPolicy;
  readonly notifier: Notifier;
  readonly onInvalidation: (message: InvalidationMessage) => void;
  /** Subscribed (again): invalidations may have been missed before this point. */
  readonly onSubscribed: () => void;
}

export class InvalidationSubscriber {
  readonly #options: InvalidationSubscriberOptions;
  readonly #connection: RedisConnection;

  constructor(options: InvalidationSubscriberOptions) {
    this.#options = options;
    this.#connection = new RedisConnection({ ...options, role: RedisConnectionRole.Subscriber, readyOnConnect: false });
    const { client } = this.#connection;
    client.on('ready', () => void this.#subscribe());
    client.on('message', (channel: string, raw: string) => {
      if (channel === INVALIDATION_CHANNEL) this.#receive(raw);
    });
  }

  /** Resolves once subscribed. */
  ready(): Promise<void> {
    return this.#connection.ready();
  }

  close(): Promise<void> {
    return this.#connection.close();
  }

  async #subscribe(): Promise<void> {
    const { client } = this.#connection;
    try {
      await client.subscribe(INVALIDATION_CHANNEL);
    } catch (error) {
      if (this.#connection.isClosing) return;
      this.#options.notifier.redisError({ operation: 'subscribe', error: error as Error });
      // Connected but not subscribed would miss every invalidation: start over.
      if (client.status === 'ready') client.disconnect(true);
      return;
    }
    this.#options.onSubscribed();
    this.#connection.markReady();
  }

  #receive(raw: string): void {
    const message = decodeInvalidation(raw);
    if (message === null) {
      // Nothing to act on, but a publisher speaks another format, which an operator must hear of.
      this.#options.notifier.redisError({ operation: 'message', error: new InvalidationMessageError() });
      return;
    }
    this.#options.onInvalidation(message);
  }
}
