// The OpenAPI document (/docs/json) generated from the route schemas, and swagger-ui at /docs.
// Both are public: the document describes the API, it grants nothing.
import fp from 'fastify-plugin';
import swagger from '@fastify/swagger';
import swaggerUi from '@fastify/swagger-ui';
import type { FastifyPluginAsync } from 'fastify';
import { ErrorCode } from '../errors.ts';

export const DOCS_PREFIX = '/docs';

const docs: FastifyPluginAsync = async (app) => {
  app.addHook('onRoute', (route) => {
    if (route.url === DOCS_PREFIX || route.url.startsWith(`${DOCS_PREFIX}/`)) {
      route.config = { ...route.config, auth: 'public' };
    }
  });
  await app.register(swagger, {
    openapi: {
      openapi: '3.0.3',
      info: {
        title: 'tenantgate control plane',
        version: '1',
        description: `Provisions tenants of the tenantgate gateway. Errors are { code, message, details } with code one of ${Object.values(ErrorCode).join(', ')}.`,
      },
      components: { securitySchemes: { bearer: { type: 'http', scheme: 'bearer' } } },
      security: [{ bearer: [] }],
      tags: [
        { name: 'tenants', description: 'Tenant records and their roles (admin tokens)' },
        { name: 'routes', description: 'The routing view for gateways (gateway or admin tokens)' },
        { name: 'operations', description: 'Health, readiness and metrics (no token)' },
      ],
    },
    refResolver: { buildLocalReference: (json, _baseUri, _fragment, i) => String(json.$id ?? `def-${i}`) },
  });
  await app.register(swaggerUi, { routePrefix: DOCS_PREFIX });
};

export default fp(docs, { name: 'docs', fastify: '5.x', dependencies: ['schemas'] });
