// GET /healthz: the process answers. GET /readyz: it can do its job: the store answers and, when
// Redis is configured, Redis too (otherwise writes still succeed, but their invalidations wait
// in the outbox, which the reply counts).
import type { FastifyPluginAsync } from 'fastify';
import { NotReadyError, withDetails } from '../errors.ts';
import { errorResponses } from '../schemas.ts';
import { RedisState } from '../plugins/invalidation.ts';
import { settleWithin } from '../deadline.ts';

/** A check that answers later than this counts as down. */
export const READINESS_TIMEOUT_MS = 2000;

const readiness = {
  type: 'object',
  required: ['status', 'store', 'redis'],
  properties: {
    status: { type: 'string', enum: ['ready'] },
    store: { type: 'string', enum: ['up'] },
    redis: { type: 'string', enum: ['up', 'not configured'] },
    pendingInvalidations: { type: 'integer', description: 'Writes whose invalidation has not reached Redis yet.' },
  },
};

const health: FastifyPluginAsync = async (app) => {
  let closing = false;
  app.addHook('preClose', async () => {
    closing = true;
  });
  const operations = { tags: ['operations'], security: [] };
  app.get(
    '/healthz',
    {
      config: { auth: 'public' },
      schema: {
        ...operations,
        summary: 'Liveness',
        response: { 200: { type: 'object', properties: { status: { type: 'string', enum: ['ok'] } } } },
      },
    },
    async () => ({ status: 'ok' }),
  );
  app.get(
    '/readyz',
    {
      config: { auth: 'public' },
      schema: {
        ...operations,
        summary: 'Readiness: the store and Redis (when configured) answer',
        response: { 200: readiness, ...errorResponses(503) },
      },
    },
    async () => {
      if (closing) throw new NotReadyError('the control plane is shutting down');
      const [store, redis] = await Promise.all([
        settleWithin(
          app.store.ping().then(() => 'up' as const),
          READINESS_TIMEOUT_MS,
          'down' as const,
        ),
        app.invalidations.redisState(READINESS_TIMEOUT_MS),
      ]);
      const pendingInvalidations =
        store === 'up' ? await settleWithin(app.store.pendingInvalidations(), READINESS_TIMEOUT_MS, undefined) : undefined;
      if (store === 'up' && redis !== RedisState.Down) return { status: 'ready', store, redis, pendingInvalidations };
      const down = [store === 'down' ? 'the store' : undefined, redis === RedisState.Down ? 'redis' : undefined].filter(Boolean);
      throw withDetails(new NotReadyError(`${down.join(' and ')} not reachable`), { store, redis, pendingInvalidations });
    },
  );
};

export default health;
