// Request latency by route template, and GET /metrics in the Prometheus text format.
import fp from 'fastify-plugin';
import type { FastifyPluginAsync } from 'fastify';
import { pendingJobs } from '../clusters/jobs.ts';
import { createMetrics, UNMATCHED_ROUTE, type ControlPlaneMetrics } from '../metrics.ts';

declare module 'fastify' {
  interface FastifyInstance {
    metrics: ControlPlaneMetrics;
  }
}

const metrics: FastifyPluginAsync = async (app) => {
  const m = createMetrics({
    countTenants: () => app.store.count(),
    pendingInvalidations: () => app.store.pendingInvalidations(),
    pendingJobs: () => pendingJobs(app.store.database),
  });
  app.decorate('metrics', m);
  app.addHook('onResponse', async (request, reply) => {
    const route = request.routeOptions.url ?? UNMATCHED_ROUTE;
    m.httpRequestDuration.observe({ method: request.method, route, status: String(reply.statusCode) }, reply.elapsedTime / 1000);
  });
  app.get(
    '/metrics',
    {
      config: { auth: 'public' },
      schema: {
        tags: ['operations'],
        summary: 'Prometheus metrics',
        security: [],
        produces: ['text/plain'],
        response: { 200: { type: 'string', description: 'Prometheus text exposition format' } },
      },
    },
    async (_request, reply) => {
      const text = await m.registry.metrics();
      return reply.type(m.registry.contentType).send(text);
    },
  );
};

export default fp(metrics, { name: 'metrics', fastify: '5.x', dependencies: ['store', 'auth'] });
