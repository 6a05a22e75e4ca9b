// GET /v1/routes/:id: the routing view gateways fetch on a cache miss, role secrets included.
// Gateway and admin tokens may read it.
import type { FastifyPluginAsync } from 'fastify';
import { etagOf } from '../etag.ts';
import { tenantNotFound } from '../errors.ts';
import { errorResponses, ref, SchemaId, tenantIdParams } from '../schemas.ts';
import { ProvisioningState } from '../store.ts';
import { routeView } from '../views.ts';

export interface RouteRoutesOptions {
  /** The issuing CA's certificate, carried in every route for the gateways to trust. */
  readonly issuerCaPem?: string | undefined;
}

const routes: FastifyPluginAsync<RouteRoutesOptions> = async (app, options) => {
  app.get<{ Params: { id: string } }>(
    '/v1/routes/:id',
    {
      config: { auth: 'gateway' },
      schema: {
        tags: ['routes'],
        summary: 'The routing view of a tenant, with role secrets and version',
        params: tenantIdParams,
        response: { 200: ref(SchemaId.TenantRoute), ...errorResponses(400, 401, 404) },
      },
    },
    async (request, reply) => {
      const stored = await app.store.get(request.params.id, { secrets: true });
      // A tenant whose database is not (yet) made has no route: gateways treat it as unknown until
      // the version that makes it active invalidates what they cached.
      if (stored === undefined || (stored.provisioning !== undefined && stored.provisioning.state !== ProvisioningState.Active)) {
        throw tenantNotFound(request.params.id);
      }
      void reply.header('etag', etagOf(stored.version));
      return routeView(stored, options.issuerCaPem);
    },
  );

  app.post<{ Params: { id: string } }>(
    '/v1/routes/:id/wake',
    {
      config: { auth: 'gateway' },
      schema: {
        tags: ['routes'],
        summary: 'Wake a sleeping tenant: one wake however many ask; the route says active once it is up',
        params: tenantIdParams,
        response: {
          200: { ...wakeAnswer, description: 'Not sleeping: nothing to wake' },
          202: { ...wakeAnswer, description: 'Waking: the route turns active when the compute is up' },
          ...errorResponses(400, 401, 404, 409, 501),
        },
      },
    },
    async (request, reply) => {
      const { id } = request.params;
      const { provisioner } = app.compute();
      const stored = await app.store.get(id, { secrets: false });
      if (stored === undefined) throw tenantNotFound(id);
      const state = await app.store.requestWake(id, stored.provisioning?.cluster ?? null);
      if (state === 'waking') provisioner.kick();
      return reply.code(state === 'active' ? 200 : 202).send({ id, state });
    },
  );
};

const wakeAnswer = {
  type: 'object',
  required: ['id', 'state'],
  properties: { id: { type: 'string' }, state: { type: 'string', enum: ['active', 'waking'] } },
} as const;

export default routes;
