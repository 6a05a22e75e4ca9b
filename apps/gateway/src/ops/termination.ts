// Ending a tenant's sessions when the control plane asks (docs/architecture.md, "Redis"): each
// gateway process subscribes to TERMINATE_CHANNEL, ends the named tenant's sessions as an
// operator's DELETE /sessions/:id does, and acknowledges with how many it ended. Without Redis
// the control plane cannot reach the gateways; each gateway's admin port still can.
import { hostname } from 'node:os';
import type { Redis } from 'ioredis';
import { decodeTerminateRequest, TERMINATE_ACKS_TTL_MS, TERMINATE_CHANNEL, terminateAcksKey } from '@tenantgate/tenancy';
import type { Logger } from '../telemetry/index.ts';

export interface TerminationListenerOptions {
  /** A connection of its own: it becomes a subscriber. */
  readonly subscriber: Redis;
  /** For the acknowledgements. */
  readonly commands: Redis;
  /** Ends a tenant's sessions here; returns how many. */
  readonly terminate: (tenantId: string) => number;
  readonly logger: Logger;
}

export class TerminationListener {
  readonly #options: TerminationListenerOptions;
  readonly #gateway = `${hostname()}:${process.pid}`;

  constructor(options: TerminationListenerOptions) {
    this.#options = options;
    options.subscriber.on('message', (channel: string, message: string) => {
      if (channel === TERMINATE_CHANNEL) void this.#onRequest(message);
    });
    // ioredis subscribes again after every reconnect.
    void options.subscriber.subscribe(TERMINATE_CHANNEL).catch(() => {});
  }

  close(): void {
    this.#options.subscriber.disconnect();
    this.#options.commands.disconnect();
  }

  async #onRequest(message: string): Promise<void> {
    const request = decodeTerminateRequest(message);
    const { logger, commands } = this.#options;
    if (request === null) {
      logger.warn('ignored a malformed message on the terminate channel');
      return;
    }
    const ended = this.#options.terminate(request.tenant);
    logger.info(
      { tenant: request.tenant, ended, requestId: request.requestId },
      "ended the tenant's sessions at the control plane's request",
    );
    try {
      const key = terminateAcksKey(request.requestId);
      await commands
        .multi()
        .rpush(key, JSON.stringify({ gateway: this.#gateway, ended }))
        .pexpire(key, TERMINATE_ACKS_TTL_MS)
        .exec();
    } catch (err) {
      logger.warn({ err, requestId: request.requestId }, 'could not acknowledge a terminate request');
    }
  }
}
