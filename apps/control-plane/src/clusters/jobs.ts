// Provisioning jobs: work on a cluster that a committed tenant change needs (docs/architecture.md,
// "Clusters"). A row is written in the transaction of the change, so it cannot be lost, and done
// after commit by the provisioner. A job is claimed with a lease (a token and an expiry the
// worker renews); a control plane that dies leaves the lease to expire and the next one resumes
// the job. Writes that finish a job name the token, so a worker whose lease was taken over
// changes nothing.
import { randomUUID } from 'node:crypto';
import type { Queryable } from '../db/database.ts';
import type { CreatedObject } from './tenant-objects.ts';

export const JobAction = {
  /** Make the tenant's database and roles; on failure, become a rollback. */
  Create: 'create',
  /** Undo what a failed create made, then mark the tenant failed. */
  Rollback: 'rollback',
  /** Drop a deleted tenant's database and roles (DELETE ?dropDatabase=true). */
  Drop: 'drop',
  /** Start a sleeping tenant's compute (the compute driver). */
  Wake: 'wake',
  /** Stop an idle tenant's compute, already `sleeping` for the gateways. */
  Suspend: 'suspend',
} as const;
export type JobAction = (typeof JobAction)[keyof typeof JobAction];

export interface JobSpec {
  /** Backend login roles to drop (a drop job; create reads the roles from the tenant). */
  readonly roles?: readonly string[];
}

/** The reason a job failed, as the API reports errors. */
export interface JobError {
  readonly code: string;
  readonly message: string;
  readonly details?: Record<string, unknown>;
}

export interface Job {
  readonly tenantId: string;
  readonly action: JobAction;
  /** Null for compute jobs of a tenant that is not on a cluster (the webhook driver needs none). */
  readonly clusterId: string | null;
  readonly spec: JobSpec;
  readonly created: readonly CreatedObject[];
  readonly attempts: number;
  readonly leaseToken: string;
  readonly lastError: JobError | null;
}

interface JobRow {
  tenant_id: string;
  action: JobAction;
  cluster_id: string | null;
  spec: JobSpec;
  created: CreatedObject[];
  attempts: number;
  lease_token: string;
  last_error: JobError | null;
}

/** How long a claim holds without renewal: a dead control plane's jobs wait this long. */
export const LEASE_SECONDS = 15;

export async function insertJob(
  tx: Queryable,
  tenantId: string,
  action: JobAction,
  clusterId: string | null,
  spec: JobSpec,
): Promise<void> {
  await tx.query('INSERT INTO provisioning_jobs (tenant_id, action, cluster_id, spec) VALUES ($1, $2, $3, $4)', [
    tenantId,
    action,
    clusterId,
    JSON.stringify(spec),
  ]);
}

export async function hasJob(tx: Queryable, tenantId: string): Promise<boolean> {
  return (await jobActionOf(tx, tenantId)) !== undefined;
}

/** The action of the tenant's job, if it has one. */
export async function jobActionOf(tx: Queryable, tenantId: string): Promise<JobAction | undefined> {
  const rows = await tx.query<{ action: JobAction }>('SELECT action FROM provisioning_jobs WHERE tenant_id = $1', [tenantId]);
  return rows[0]?.action;
}

/** A wake asked for during a suspend: done when the suspend is. */
export async function wakeAfter(tx: Queryable, tenantId: string): Promise<void> {
  await tx.query('UPDATE provisioning_jobs SET then_wake = true WHERE tenant_id = $1', [tenantId]);
}

/** Claims the next due job (not leased, or its lease expired), or undefined; `except` are running here. */
export async function claimJob(db: Queryable, except: readonly string[]): Promise<Job | undefined> {
  const rows = await db.query<JobRow>(
    `UPDATE provisioning_jobs SET lease_until = now() + make_interval(secs => $1), lease_token = $2, attempts = attempts + 1
     WHERE tenant_id = (
       SELECT tenant_id FROM provisioning_jobs
       WHERE not_before <= now() AND (lease_until IS NULL OR lease_until < now()) AND NOT (tenant_id = ANY ($3::text[]))
       ORDER BY not_before LIMIT 1 FOR UPDATE SKIP LOCKED)
     RETURNING tenant_id, action, cluster_id, spec, created, attempts, lease_token, last_error`,
    [LEASE_SECONDS, randomUUID(), except],
  );
  const row = rows[0];
  if (row === undefined) return undefined;
  return {
    tenantId: row.tenant_id,
    action: row.action,
    clusterId: row.cluster_id,
    spec: row.spec,
    created: row.created,
    attempts: Number(row.attempts),
    leaseToken: row.lease_token,
    lastError: row.last_error,
  };
}

/** Extends the lease; false when it was lost (expired and claimed by another control plane). */
export async function renewLease(db: Queryable, job: Job): Promise<boolean> {
  const rows = await db.query(
    `UPDATE provisioning_jobs SET lease_until = now() + make_interval(secs => $3) WHERE tenant_id = $1 AND lease_token = $2 RETURNING 1`,
    [job.tenantId, job.leaseToken, LEASE_SECONDS],
  );
  return rows.length > 0;
}

/** Records an object the job is about to make. @throws when the lease was lost */
export async function recordCreated(db: Queryable, job: Job, object: CreatedObject): Promise<void> {
  const rows = await db.query(
    `UPDATE provisioning_jobs SET created = created || $3::jsonb WHERE tenant_id = $1 AND lease_token = $2 RETURNING 1`,
    [job.tenantId, job.leaseToken, JSON.stringify([object])],
  );
  if (rows.length === 0) throw new Error(`the provisioning job of tenant "${job.tenantId}" was taken over by another control plane`);
}

/** Forgets an object the job recorded but did not make (its CREATE failed): never dropped as ours. */
export async function forgetCreated(db: Queryable, job: Job, object: CreatedObject): Promise<void> {
  await db.query('UPDATE provisioning_jobs SET created = created - $3::text WHERE tenant_id = $1 AND lease_token = $2', [
    job.tenantId,
    job.leaseToken,
    object,
  ]);
}

/** Gives the job back to run again after `delayMs`, with the error that stopped it. */
export async function rescheduleJob(db: Queryable, job: Job, delayMs: number, error: JobError): Promise<void> {
  await db.query(
    `UPDATE provisioning_jobs SET not_before = now() + make_interval(secs => $3), lease_until = NULL, lease_token = NULL, last_error = $4
     WHERE tenant_id = $1 AND lease_token = $2`,
    [job.tenantId, job.leaseToken, delayMs / 1000, JSON.stringify(error)],
  );
}

/** Turns a failed create into its rollback, due now, keeping what it made. */
export async function toRollback(db: Queryable, job: Job, error: JobError): Promise<void> {
  await db.query(
    `UPDATE provisioning_jobs SET action = 'rollback', attempts = 0, not_before = now(), lease_until = NULL, lease_token = NULL, last_error = $3
     WHERE tenant_id = $1 AND lease_token = $2`,
    [job.tenantId, job.leaseToken, JSON.stringify(error)],
  );
}

/** A suspend that is done, and was asked to wake meanwhile, becomes that wake (due now). */
export async function suspendToWake(tx: Queryable, job: Job): Promise<boolean> {
  const rows = await tx.query(
    `UPDATE provisioning_jobs SET action = 'wake', then_wake = false, attempts = 0, not_before = now(), lease_until = NULL, lease_token = NULL, last_error = NULL
     WHERE tenant_id = $1 AND lease_token = $2 RETURNING 1`,
    [job.tenantId, job.leaseToken],
  );
  return rows.length > 0;
}

/** Removes a finished job; false when the lease was lost (the other holder finishes it). */
export async function deleteJob(tx: Queryable, job: Job): Promise<boolean> {
  const rows = await tx.query('DELETE FROM provisioning_jobs WHERE tenant_id = $1 AND lease_token = $2 RETURNING 1', [
    job.tenantId,
    job.leaseToken,
  ]);
  return rows.length > 0;
}

/** Jobs not done, by action. */
export async function pendingJobs(db: Queryable): Promise<Record<string, number>> {
  const rows = await db.query<{ action: string; n: number }>('SELECT action, count(*)::int AS n FROM provisioning_jobs GROUP BY action');
  return Object.fromEntries(rows.map((row) => [row.action, Number(row.n)]));
}
