// /v1/clusters: the PostgreSQL clusters the control plane provisions tenants on (register, list,
// read with a live check, delete when unused). Admin tokens only. Registering connects as the
// cluster's admin first: a cluster the control plane cannot use is refused, not stored.
import type { FastifyPluginAsync } from 'fastify';
import { isLocalHost } from '@tenantgate/tenancy';
import { adminPrivilegeProblem, checkCluster, refused, withClusterAdmin, type Cluster, type ClusterCheck } from '../clusters/cluster.ts';
import type { StoredCluster } from '../clusters/cluster-store.ts';
import { readCredential } from '../clusters/credentials.ts';
import { jobErrorOf } from '../clusters/provisioner.ts';
import { pageAnswer, pageRequest } from '../cursor.ts';
import { ClusterExistsError, validationError } from '../errors.ts';
import { clusterInput, clusterList, clusterView, errorResponses, listQuery, tenantIdParams } from '../schemas.ts';

export interface ClusterRoutesOptions {
  /** Clusters on loopback or link-local addresses (CONTROL_PLANE_ALLOW_LOCAL_BACKENDS). */
  readonly allowLocalBackends?: boolean;
}

const clusters: FastifyPluginAsync<ClusterRoutesOptions> = async (app, options) => {
  const tags = ['clusters'];

  /** Connects as the admin: it must log in and be allowed to create roles and databases. */
  const check = async (cluster: Cluster): Promise<ClusterCheck> => {
    const { secretsDir } = app.provisioning();
    return withClusterAdmin(cluster, secretsDir, 'postgres', async (client) => {
      const problem = await adminPrivilegeProblem(client);
      if (problem !== undefined) throw refused(cluster.id, problem);
      return checkCluster(client);
    });
  };

  app.post<{ Body: Cluster }>(
    '/v1/clusters',
    {
      schema: {
        tags,
        summary: 'Register a cluster to provision tenants on (the control plane logs in as its admin first)',
        body: clusterInput,
        response: { 201: clusterView, ...errorResponses(400, 401, 403, 409, 413, 415, 501, 502) },
      },
    },
    async (request, reply) => {
      const cluster = request.body;
      const { secretsDir } = app.provisioning();
      if (options.allowLocalBackends !== true && isLocalHost(cluster.host)) {
        const message = 'is a loopback or link-local address; set CONTROL_PLANE_ALLOW_LOCAL_BACKENDS=true to allow it';
        throw validationError('body', [{ path: '/host', message }]);
      }
      const credential = await readCredential(secretsDir, cluster.adminCredential);
      if (typeof credential === 'string') throw validationError('body', [{ path: '/adminCredential', message: credential }]);
      // A password is sent to whatever server asks for it in the clear: one registered with another
      // host could collect a cluster's password. So a password serves the one cluster it was given for.
      const holder = credential.kind === 'password' ? await app.clusters.usingCredential(cluster.adminCredential) : undefined;
      if (holder !== undefined) {
        const message = `is the password of cluster "${holder}"; a password credential serves one cluster (certificates may be shared)`;
        throw validationError('body', [{ path: '/adminCredential', message }]);
      }
      // Before connecting: an id in use is refused without touching the cluster.
      if ((await app.clusters.get(cluster.id)) !== undefined) throw new ClusterExistsError(cluster.id);
      const stored = await app.clusters.create(cluster, await check(cluster));
      void reply.header('location', `/v1/clusters/${cluster.id}`);
      return reply.code(201).send(viewOf(stored));
    },
  );

  app.get<{ Querystring: { limit?: string; cursor?: string } }>(
    '/v1/clusters',
    {
      schema: {
        tags,
        summary: 'List clusters in id order, with what their last check found',
        querystring: listQuery,
        response: { 200: clusterList, ...errorResponses(400, 401, 403) },
      },
    },
    async (request) => pageAnswer(await app.clusters.list(pageRequest(request.query)), (stored) => stored.cluster.id, viewOf),
  );

  app.get<{ Params: { id: string } }>(
    '/v1/clusters/:id',
    {
      schema: {
        tags,
        summary: 'Read a cluster, checked now: its version and free connection slots, or why it cannot be used',
        params: tenantIdParams,
        response: { 200: clusterView, ...errorResponses(400, 401, 403, 404, 501) },
      },
    },
    async (request) => {
      app.provisioning(); // 501 without CONTROL_PLANE_SECRETS_DIR, not a failed check
      const stored = await app.clusters.require(request.params.id);
      try {
        const latest = await check(stored.cluster);
        await app.clusters.recordCheck(stored.cluster.id, latest);
        return { ...viewOf({ ...stored, check: latest }), reachable: true };
      } catch (error) {
        return { ...viewOf(stored), reachable: false, error: jobErrorOf(error) };
      }
    },
  );

  app.delete<{ Params: { id: string } }>(
    '/v1/clusters/:id',
    {
      schema: {
        tags,
        summary: 'Forget a cluster (refused while tenants live on it); nothing on the cluster changes',
        params: tenantIdParams,
        response: { 204: { type: 'null', description: 'Deleted' }, ...errorResponses(400, 401, 403, 404, 409) },
      },
    },
    async (request, reply) => {
      await app.clusters.delete(request.params.id);
      return reply.code(204).send();
    },
  );
};

function viewOf({ cluster, check, createdAt }: StoredCluster): Record<string, unknown> {
  return { ...cluster, ...check, createdAt };
}

export default clusters;
