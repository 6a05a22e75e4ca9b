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
};

export default routes;
