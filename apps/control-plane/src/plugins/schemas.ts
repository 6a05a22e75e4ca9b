// The shared JSON schemas (request bodies, views, the error body), added once so routes refer to
// them and the OpenAPI document lists them as components.
import fp from 'fastify-plugin';
import type { FastifyPluginAsync } from 'fastify';
import { SHARED_SCHEMAS } from '../schemas.ts';

const schemas: FastifyPluginAsync = async (app) => {
  for (const schema of SHARED_SCHEMAS) app.addSchema(schema);
};

export default fp(schemas, { name: 'schemas', fastify: '5.x' });
