// Ending a tenant's sessions on every gateway (docs/architecture.md, "Redis"): a request is
// published on the terminate channel, and the gateways' acknowledgements are collected for a
// bounded time, so the answer says how many gateways received it, how many acted, and how many
// sessions they ended. Sessions live on the gateways, which the control plane reaches only
// through Redis: without it (or with it down) the answer is 503.
import { randomUUID } from 'node:crypto';
import fp from 'fastify-plugin';
import type { FastifyPluginAsync } from 'fastify';
import type { Redis } from 'ioredis';
import { decodeTerminateAck, TERMINATE_CHANNEL, terminateAcksKey } from '@tenantgate/tenancy';
import { GatewaysUnreachableError } from '../errors.ts';

export interface TerminationResult {
  /** Gateway processes subscribed when the request was published. */
  readonly gateways: number;
  /** Those that answered within the wait. */
  readonly acknowledged: number;
  readonly sessionsEnded: number;
}

export interface Terminations {
  /** False without Redis: the gateways cannot be reached from here. */
  readonly configured: boolean;
  /** @throws GatewaysUnreachableError (503) without Redis, or when Redis does not take the request. */
  terminate(tenantId: string): Promise<TerminationResult>;
}

declare module 'fastify' {
  interface FastifyInstance {
    terminations: Terminations;
  }
}

export interface TerminationsPluginOptions {
  readonly redis?: Redis;
  /** How long to wait for the gateways' acknowledgements (default 2 s). */
  readonly ackWaitMs?: number;
}

const ACK_POLL_MS = 25;

const terminations: FastifyPluginAsync<TerminationsPluginOptions> = async (app, options) => {
  const { redis } = options;
  const ackWaitMs = options.ackWaitMs ?? 2_000;
  app.decorate('terminations', {
    configured: redis !== undefined,
    async terminate(tenantId: string): Promise<TerminationResult> {
      if (redis === undefined) throw new GatewaysUnreachableError('no REDIS_URL is configured');
      const requestId = randomUUID();
      let gateways: number;
      try {
        gateways = await redis.publish(TERMINATE_CHANNEL, JSON.stringify({ tenant: tenantId, requestId }));
      } catch (error) {
        throw new GatewaysUnreachableError(`Redis did not take the request (${(error as Error).message})`);
      }
      const key = terminateAcksKey(requestId);
      let acks: string[] = [];
      for (const deadline = Date.now() + ackWaitMs; acks.length < gateways && Date.now() < deadline;) {
        await new Promise((resolve) => setTimeout(resolve, ACK_POLL_MS));
        acks = await redis.lrange(key, 0, -1).catch(() => acks);
      }
      const decoded = acks.map(decodeTerminateAck).filter((ack) => ack !== null);
      app.log.info({ tenant: tenantId, requestId, gateways, acknowledged: decoded.length }, 'terminate-sessions');
      return { gateways, acknowledged: decoded.length, sessionsEnded: decoded.reduce((sum, ack) => sum + ack.ended, 0) };
    },
  });
};

export default fp(terminations, { name: 'terminations', fastify: '5.x' });
