// /v1/tenants: create, list, read, patch and delete tenant records, and set or remove their
// roles. Admin tokens only. Every write is one store transaction; after it commits, the
// invalidation publisher is kicked. Replies carry `ETag: "<version>"`; writes honour If-Match.
import type { FastifyPluginAsync, FastifyReply, FastifyRequest, FastifySchemaCompiler } from 'fastify';
import {
  isLocalHost,
  materializeTenant,
  roleAuthModeProblem,
  validateTenantInput,
  type Tenant,
  type TenantInput,
  type RoleAuthMode,
  type TenantRole,
  type ValidationOptions,
} from '@tenantgate/tenancy';
import { pageAnswer, pageRequest } from '../cursor.ts';
import { etagOf, parseIfMatch } from '../etag.ts';
import { GatewaysUnreachableError, tenantNotFound, validationError } from '../errors.ts';
import { clusterOf, createOnCluster, deleteTenant, dropClusterRole, provisionedRole, setClusterRole } from './provisioned-tenants.ts';
import { mergePatch } from '../merge-patch.ts';
import { hashPassword } from '../passwords.ts';
import { deleteTenantQuery, errorResponses, ifMatchHeaders, listQuery, ref, roleParams, SchemaId, tenantIdParams } from '../schemas.ts';
import type { StoredTenant, WriteCondition } from '../store.ts';
import { adminView } from '../views.ts';

interface IdParams {
  id: string;
}
interface RoleParams extends IdParams {
  role: string;
}
interface RoleBody {
  password?: string;
  scramSecret?: string;
  backendUser?: string;
  authMode?: RoleAuthMode;
}

/**
 * The POST body is validated by libs/tenancy (the tenant schema, its defaults and the checks a
 * schema cannot express: CIDRs, duplicate roles, template placeholders), so one function decides
 * what a tenant is for the API and the gateway's tenants file alike.
 */
function tenantRecordValidator(validation: ValidationOptions): FastifySchemaCompiler<unknown> {
  return () => (data: unknown) => {
    try {
      return { value: validateTenantInput(data, validation) };
    } catch (error) {
      return { error: error as Error };
    }
  };
}

export interface TenantRoutesOptions {
  /** Backends on loopback or link-local addresses (CONTROL_PLANE_ALLOW_LOCAL_BACKENDS). */
  readonly allowLocalBackends?: boolean;
  /** The control plane issues client certificates: the certificate modes need no clientCaCertificate. */
  readonly issuesCertificates?: boolean;
}

const tenants: FastifyPluginAsync<TenantRoutesOptions> = async (app, options) => {
  const tags = ['tenants'];
  const validation: ValidationOptions = { issuesCertificates: options.issuesCertificates === true };
  const checkBackend = (tenant: Pick<TenantInput, 'backend'>): void => {
    if (options.allowLocalBackends === true || !isLocalHost(tenant.backend.host)) return;
    const message =
      'is a loopback or link-local address (this machine, or a cloud metadata service); set CONTROL_PLANE_ALLOW_LOCAL_BACKENDS=true to allow it';
    throw validationError('body', [{ path: '/backend/host', message }]);
  };

  app.post<{ Body: TenantInput }>(
    '/v1/tenants',
    {
      validatorCompiler: tenantRecordValidator(validation),
      schema: {
        tags,
        summary: 'Create a tenant',
        body: ref(SchemaId.TenantInput),
        response: {
          201: ref(SchemaId.TenantView),
          202: { ...ref(SchemaId.TenantView), description: 'On a cluster: still being provisioned (GET shows when it is done)' },
          ...errorResponses(400, 401, 403, 409, 413, 415, 500, 501, 502),
        },
      },
    },
    async (request, reply) => {
      if (request.body.backend.cluster !== undefined) return createOnCluster(app, request.body, reply);
      checkBackend(request.body);
      const tenant = await materializeTenant(request.body, hashPassword);
      const stored = await app.store.create(tenant);
      await app.invalidations.publish();
      void reply.header('location', `/v1/tenants/${tenant.id}`);
      return sendTenant(reply.code(201), stored);
    },
  );

  app.get<{ Querystring: { limit?: string; cursor?: string } }>(
    '/v1/tenants',
    {
      schema: {
        tags,
        summary: 'List tenants in id order, a page at a time',
        querystring: listQuery,
        response: { 200: ref(SchemaId.TenantList), ...errorResponses(400, 401, 403) },
      },
    },
    async (request) => pageAnswer(await app.store.list(pageRequest(request.query)), (stored) => stored.tenant.id, adminView),
  );

  app.get<{ Params: IdParams }>(
    '/v1/tenants/:id',
    {
      schema: {
        tags,
        summary: 'Read a tenant (without role secrets)',
        params: tenantIdParams,
        response: { 200: ref(SchemaId.TenantView), ...errorResponses(400, 401, 403, 404) },
      },
    },
    async (request, reply) => {
      const stored = await app.store.get(request.params.id, { secrets: false });
      if (stored === undefined) throw tenantNotFound(request.params.id);
      return sendTenant(reply, stored);
    },
  );

  app.patch<{ Params: IdParams; Body: Record<string, unknown> }>(
    '/v1/tenants/:id',
    {
      schema: {
        tags,
        summary: 'Change a tenant (JSON Merge Patch of the record)',
        params: tenantIdParams,
        headers: ifMatchHeaders,
        body: ref(SchemaId.TenantPatch),
        response: { 200: ref(SchemaId.TenantView), ...errorResponses(400, 401, 403, 404, 409, 413, 415) },
      },
    },
    async (request, reply) => {
      const { terminateSessions, ...patch } = request.body;
      if (Object.keys(patch).length === 0) throw validationError('body', [{ path: '', message: 'changes nothing of the record' }]);
      // Refused before the write: a change that was asked to end sessions must not half happen.
      if (terminateSessions === true && !app.terminations.configured) throw new GatewaysUnreachableError('no REDIS_URL is configured');
      const change = (current: Tenant): Tenant => {
        if ('backend' in patch) checkBackendPatch(current, patch.backend);
        const next = patched(current, patch, validation);
        checkBackend(next);
        return next;
      };
      const stored = await app.store.update(request.params.id, change, writeCondition(request));
      // The gateways drop the old route first: an ended session's client cannot come back in.
      await app.invalidations.publish();
      if (terminateSessions === true) {
        // The change is committed: a failure to reach the gateways is said in the header, not as an error.
        const header = await app.terminations.terminate(request.params.id).then(
          (ended) => `${ended.sessionsEnded}; gateways=${ended.gateways}; acknowledged=${ended.acknowledged}`,
          (error: Error) => `unknown; error=${JSON.stringify(error.message)}`,
        );
        reply.header('tenantgate-sessions-ended', header);
      }
      return sendTenant(reply, stored);
    },
  );

  app.delete<{ Params: IdParams; Querystring: { dropDatabase?: 'true' | 'false' } }>(
    '/v1/tenants/:id',
    {
      schema: {
        tags,
        summary: 'Delete a tenant and its roles; a tenant on a cluster keeps its database unless ?dropDatabase=true',
        params: tenantIdParams,
        querystring: deleteTenantQuery,
        headers: ifMatchHeaders,
        response: {
          202: {
            type: 'object',
            description: 'Deleted; its database is still being dropped (retried until done)',
            properties: {
              id: { type: 'string' },
              database: { type: 'string', enum: ['dropping'] },
              reason: { type: 'object', additionalProperties: true },
            },
          },
          204: { type: 'null', description: 'Deleted' },
          ...errorResponses(400, 401, 403, 404, 409, 501),
        },
      },
    },
    async (request, reply) => {
      return deleteTenant(app, request.params.id, request.query.dropDatabase === 'true', writeCondition(request), reply);
    },
  );

  app.post<{ Params: IdParams }>(
    '/v1/tenants/:id/terminate-sessions',
    {
      schema: {
        tags,
        summary: "End the tenant's sessions on every gateway (FATAL 57P01, as pg_terminate_backend)",
        params: tenantIdParams,
        response: {
          200: {
            type: 'object',
            required: ['tenant', 'gateways', 'acknowledged', 'sessionsEnded'],
            properties: {
              tenant: { type: 'string' },
              gateways: { type: 'integer', description: 'Gateway processes that received the request.' },
              acknowledged: { type: 'integer', description: 'Those that answered within 2 s.' },
              sessionsEnded: { type: 'integer' },
            },
          },
          ...errorResponses(400, 401, 403, 404, 503),
        },
      },
    },
    async (request) => {
      const id = request.params.id;
      if ((await app.store.get(id, { secrets: false })) === undefined) throw tenantNotFound(id);
      return { tenant: id, ...(await app.terminations.terminate(id)) };
    },
  );

  app.put<{ Params: RoleParams; Body: RoleBody }>(
    '/v1/tenants/:id/roles/:role',
    {
      schema: {
        tags,
        summary: 'Set a role: a password (stored only as a SCRAM secret) or a SCRAM secret, and a backend user',
        params: roleParams,
        headers: ifMatchHeaders,
        body: ref(SchemaId.RoleInput),
        response: {
          200: { ...ref(SchemaId.TenantView), description: 'Role replaced; the tenant' },
          201: { ...ref(SchemaId.TenantView), description: 'Role added; the tenant' },
          ...errorResponses(400, 401, 403, 404, 409, 413, 415),
        },
      },
    },
    async (request, reply) => {
      const { id } = request.params;
      const current = await app.store.get(id, { secrets: false });
      if (current === undefined) throw tenantNotFound(id);
      const role = provisionedRole(current, await roleOf(request.params.role, request.body));
      if (role.authMode !== undefined) checkRoleMode(current.tenant, role.authMode);
      // A tenant on a cluster: the role is set there first, with the tenant locked; if the cluster
      // refuses, nothing is stored.
      const cluster = await clusterOf(app, current);
      const apply = cluster === undefined ? undefined : (locked: StoredTenant) => setClusterRole(app, cluster, locked, role);
      const { stored, created } = await app.store.putRole(id, role, writeCondition(request), apply);
      await app.invalidations.publish();
      return sendTenant(reply.code(created ? 201 : 200), stored);
    },
  );

  /** A role's own mode must fit its tenant, as validateTenantInput checks for roles given whole. */
  const checkRoleMode = (tenant: Tenant, authMode: RoleAuthMode): void => {
    const problem = roleAuthModeProblem(tenant, authMode, validation);
    if (problem !== undefined) throw validationError('body', [{ path: '/authMode', message: problem }]);
  };

  app.delete<{ Params: RoleParams }>(
    '/v1/tenants/:id/roles/:role',
    {
      schema: {
        tags,
        summary: 'Remove a role',
        params: roleParams,
        headers: ifMatchHeaders,
        response: { 200: ref(SchemaId.TenantView), ...errorResponses(400, 401, 403, 404, 409) },
      },
    },
    async (request, reply) => {
      const { id, role } = request.params;
      const current = await app.store.get(id, { secrets: false });
      const cluster = current === undefined ? undefined : await clusterOf(app, current);
      const apply = cluster === undefined ? undefined : (locked: StoredTenant) => dropClusterRole(app, cluster, locked, role);
      const stored = await app.store.deleteRole(id, role, writeCondition(request), apply);
      await app.invalidations.publish();
      return sendTenant(reply, stored);
    },
  );
};

function sendTenant(reply: FastifyReply, stored: StoredTenant): ReturnType<typeof adminView> {
  void reply.header('etag', etagOf(stored.version));
  return adminView(stored);
}

function writeCondition(request: FastifyRequest): WriteCondition {
  const header = request.headers['if-match'];
  const condition = parseIfMatch(Array.isArray(header) ? header.join(',') : header);
  switch (condition.kind) {
    case 'any':
      return {};
    case 'versions':
      return { ifMatch: condition.versions };
    case 'invalid':
      throw validationError('headers', [{ path: '/if-match', message: 'must be * or ETags of versions, e.g. "12"' }]);
  }
}

/** A provisioned tenant's backend is its cluster's; a tenant is put on a cluster only when created. */
function checkBackendPatch(current: Tenant, patch: unknown): void {
  if (current.backend.cluster !== undefined) {
    throw validationError('body', [
      { path: '/backend', message: `is set by cluster "${current.backend.cluster}" for a tenant provisioned on it` },
    ]);
  }
  if (typeof patch === 'object' && patch !== null && 'cluster' in patch) {
    throw validationError('body', [{ path: '/backend/cluster', message: 'is given when the tenant is created (POST), not by a change' }]);
  }
}

/** The tenant after a merge patch of its record, validated whole; roles are not patched. */
function patched(current: Tenant, patch: Record<string, unknown>, validation: ValidationOptions): Tenant {
  const { roles, id, ...record } = current;
  const merged = mergePatch(record, patch) as Record<string, unknown>;
  const { roles: _none, ...next } = validateTenantInput({ ...merged, id, roles: [] }, validation);
  return { ...next, roles };
}

async function roleOf(name: string, body: RoleBody): Promise<TenantRole> {
  const scramSecret = body.scramSecret ?? (await hashPassword(body.password as string));
  return {
    name,
    scramSecret,
    ...(body.backendUser === undefined ? {} : { backendUser: body.backendUser }),
    ...(body.authMode === undefined ? {} : { authMode: body.authMode }),
  };
}

export default tenants;
