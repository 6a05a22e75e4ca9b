// The parts of /v1/tenants that differ for a tenant on a cluster (docs/architecture.md,
// "Clusters"): creating it provisions its database and roles there (a job, waited for); setting
// or removing a role changes the cluster first, with the tenant locked, so the secret the edge
// checks and the backend's are the same one; deleting ends its sessions and keeps its database
// unless asked to drop it.
import type { FastifyInstance, FastifyReply } from 'fastify';
import { materializeTenant, type TenantInput, type TenantRole, type ValidationIssue } from '@tenantgate/tenancy';
import { withClusterAdmin, type Cluster } from '../clusters/cluster.ts';
import type { JobError } from '../clusters/jobs.ts';
import {
  backendRoleName,
  backendRoleProblem,
  dropLoginRole,
  ensureLoginRole,
  tenantObjects,
  type Steps,
} from '../clusters/tenant-objects.ts';
import { etagOf } from '../etag.ts';
import { TenantNotProvisionedError, validationError, withDetails } from '../errors.ts';
import { hashPassword } from '../passwords.ts';
import { ProvisioningState, type StoredTenant, type WriteCondition } from '../store.ts';
import { adminView } from '../views.ts';

/** How long a request waits for its tenant's job before answering 202. */
const JOB_WAIT_MS = 30_000;

/** Backend fields that come from the cluster: a request gives only `cluster` (and `tls`). */
const CLUSTER_FIELDS = ['host', 'serverName', 'database', 'caCertificate', 'clientCertificate'] as const;

/** POST /v1/tenants with backend.cluster: stores the tenant `provisioning`, then waits for the job. */
export async function createOnCluster(app: FastifyInstance, input: TenantInput, reply: FastifyReply): Promise<unknown> {
  const { provisioner } = app.provisioning();
  const clusterId = input.backend.cluster as string;
  const cluster = (await app.clusters.get(clusterId))?.cluster;
  if (cluster === undefined)
    throw validationError('body', [{ path: '/backend/cluster', message: `no cluster "${clusterId}" is registered` }]);
  const issues = clusterInputIssues(input);
  if (issues.length > 0) throw validationError('body', issues);
  const objects = tenantObjects(input.id);
  const backend = {
    cluster: clusterId,
    host: cluster.host,
    port: cluster.port,
    ...(cluster.serverName === undefined ? {} : { serverName: cluster.serverName }),
    database: objects.database,
    caCertificate: cluster.caCertificate,
    ...(cluster.clientCertificate === undefined ? {} : { clientCertificate: cluster.clientCertificate }),
    ...(input.backend.tls === undefined ? {} : { tls: input.backend.tls }),
  };
  const roles = input.roles.map((role) => ({ ...role, backendUser: backendRoleName(input.id, role.name) }));
  const tenant = await materializeTenant({ ...input, backend, roles }, hashPassword);
  const outcome = provisioner.waitFor(input.id, JOB_WAIT_MS);
  const created = await app.store.create(tenant, clusterId);
  await app.invalidations.publish();
  provisioner.kick();
  const result = await outcome;
  if (result?.state === 'failed') throw provisioningError(input.id, result.reason);
  const stored = (await app.store.get(input.id, { secrets: false })) ?? created;
  void reply.header('location', `/v1/tenants/${input.id}`);
  void reply.header('etag', etagOf(stored.version));
  return reply.code(stored.provisioning?.state === ProvisioningState.Active ? 201 : 202).send(adminView(stored));
}

function clusterInputIssues(input: TenantInput): ValidationIssue[] {
  const issues: ValidationIssue[] = [];
  for (const field of CLUSTER_FIELDS) {
    if (input.backend[field] !== undefined)
      issues.push({ path: `/backend/${field}`, message: 'is the cluster\'s: give only "cluster" (and "tls")' });
  }
  input.roles.forEach((role, i) => {
    const problem = backendRoleProblem(input.id, role.name);
    if (problem !== undefined) issues.push({ path: `/roles/${i}/name`, message: problem });
    if (role.backendUser !== undefined) {
      issues.push({ path: `/roles/${i}/backendUser`, message: `is set by provisioning ("${backendRoleName(input.id, role.name)}")` });
    }
  });
  return issues;
}

/** The job's failure as the request's error: the cluster's error code, with the tenant's state. */
function provisioningError(id: string, reason: JobError): Error {
  const statusCode = reason.code.startsWith('TG_ERR_BACKEND_') ? 502 : 500;
  const error = Object.assign(new Error(`tenant "${id}" was not provisioned: ${reason.message}`), { code: reason.code, statusCode });
  return withDetails(error, { ...reason.details, tenant: id, state: ProvisioningState.Failed });
}

/**
 * A role of a tenant on a cluster logs in to the backend as `<tenant>_<role>`.
 * @throws a 400 naming what does not fit; the role unchanged for any other tenant
 */
export function provisionedRole(current: StoredTenant, role: TenantRole): TenantRole {
  if (current.provisioning === undefined) return role;
  const id = current.tenant.id;
  const backendUser = backendRoleName(id, role.name);
  const issues: ValidationIssue[] = [];
  const problem = backendRoleProblem(id, role.name);
  if (problem !== undefined) issues.push({ path: '/role', message: problem });
  if (role.backendUser !== undefined && role.backendUser !== backendUser) {
    issues.push({ path: '/backendUser', message: `is set by provisioning ("${backendUser}")` });
  }
  if (issues.length > 0) throw validationError(problem === undefined ? 'body' : 'params', issues);
  return { ...role, backendUser };
}

/**
 * The cluster of a tenant on one, read before the store transaction (the embedded store has one
 * connection: a read inside a transaction would wait for it), or undefined for any other tenant.
 */
export async function clusterOf(app: FastifyInstance, current: StoredTenant): Promise<Cluster | undefined> {
  if (current.provisioning === undefined) return undefined;
  return (await app.clusters.require(current.provisioning.cluster)).cluster;
}

/** Creates or alters the backend role with the role's SCRAM secret. */
export async function setClusterRole(app: FastifyInstance, cluster: Cluster, locked: StoredTenant, role: TenantRole): Promise<void> {
  checkActive(locked, 'roles can be set once it is active');
  const { secretsDir } = app.provisioning();
  await withClusterAdmin(cluster, secretsDir, 'postgres', async (client) => {
    // Not a job: a role that exists and is not the tenant's is refused, never adopted.
    const steps: Steps = {
      client,
      cluster: cluster.id,
      objects: tenantObjects(locked.tenant.id),
      created: new Set(),
      record: async () => {},
      forget: async () => {},
    };
    await ensureLoginRole(steps, role.backendUser as string, role.scramSecret);
  });
}

/** Drops the backend role; what it owned in the tenant's database passes to the owner role. */
export async function dropClusterRole(app: FastifyInstance, cluster: Cluster, locked: StoredTenant, name: string): Promise<void> {
  checkActive(locked, 'roles can be removed once it is active');
  const { secretsDir } = app.provisioning();
  const objects = tenantObjects(locked.tenant.id);
  await withClusterAdmin(cluster, secretsDir, 'postgres', (client) =>
    dropLoginRole(client, objects, backendRoleName(objects.tenant, name), (work) =>
      withClusterAdmin(cluster, secretsDir, objects.database, work),
    ),
  );
}

function checkActive(locked: StoredTenant, what: string): void {
  const state = locked.provisioning?.state;
  if (state !== undefined && state !== ProvisioningState.Active) throw new TenantNotProvisionedError(locked.tenant.id, state, what);
}

/**
 * DELETE /v1/tenants/:id. A tenant on a cluster: its route goes, its sessions are ended on every
 * gateway, and with `dropDatabase` a drop job removes its database and roles (waited for).
 */
export async function deleteTenant(
  app: FastifyInstance,
  id: string,
  dropDatabase: boolean,
  condition: WriteCondition,
  reply: FastifyReply,
): Promise<unknown> {
  // Before the write: a drop needs the provisioner, and a refused request must change nothing.
  const provisioner = dropDatabase ? app.provisioning().provisioner : undefined;
  const outcome = provisioner?.waitFor(id, JOB_WAIT_MS);
  let provisioned = false;
  let dropping = false;
  await app.store.delete(id, condition, (current) => {
    const provisioning = current.provisioning;
    if (provisioning === undefined) {
      if (!dropDatabase) return undefined;
      throw validationError('querystring', [{ path: '/dropDatabase', message: 'applies only to a tenant provisioned on a cluster' }]);
    }
    if (provisioning.state === ProvisioningState.Provisioning) {
      throw new TenantNotProvisionedError(id, provisioning.state, 'delete it once GET shows it active or failed');
    }
    provisioned = true;
    // A failed tenant has nothing left on the cluster.
    if (!dropDatabase || provisioning.state === ProvisioningState.Failed) return undefined;
    dropping = true;
    return { cluster: provisioning.cluster, spec: { roles: current.tenant.roles.map((role) => backendRoleName(id, role.name)) } };
  });
  await app.invalidations.publish();
  if (provisioned && app.terminations.configured) {
    // The route is gone first, so an ended session's client cannot come back in.
    const ended = await app.terminations.terminate(id).catch((error: Error) => ({ error: error.message }));
    app.log.info({ tenant: id, ended }, 'sessions of a deleted tenant ended');
  }
  if (!dropping || provisioner === undefined) return reply.code(204).send();
  provisioner.kick();
  const result = await outcome;
  if (result?.state === 'done') return reply.code(204).send();
  return reply.code(202).send({ id, database: 'dropping', ...(result?.state === 'retrying' ? { reason: result.reason } : {}) });
}
