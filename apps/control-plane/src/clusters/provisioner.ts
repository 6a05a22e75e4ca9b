// The provisioner: does the jobs that tenant changes leave on clusters (jobs.ts), in this
// process, a few at a time. Woken when a request leaves a job, and by a slow poll that picks up
// jobs other control planes left (a dead one's lease expires) and retries that are due. A create
// that fails for good becomes a rollback of what it made; only when that is done is the tenant
// `failed`, so a tenant is never half-made on its cluster. Requests wait for their tenant's job
// (waitFor) to answer with its outcome.
import type { FastifyBaseLogger } from 'fastify';
import type { Database } from '../db/database.ts';
import { backoffCeiling, TenantStatus } from '@tenantgate/tenancy';
import type { ComputeAction, ComputeDriver } from '../compute/driver.ts';
import { ErrorCode } from '../errors.ts';
import { ProvisioningState, type JobOutcomeChange, type TenantStore } from '../store.ts';
import { isTransient, withClusterAdmin, type Cluster } from './cluster.ts';
import type { ClusterStore } from './cluster-store.ts';
import {
  claimJob,
  forgetCreated,
  JobAction,
  LEASE_SECONDS,
  recordCreated,
  renewLease,
  rescheduleJob,
  toRollback,
  type Job,
  type JobError,
} from './jobs.ts';
import {
  backendRoleName,
  dropDatabase,
  dropRole,
  ensureDatabase,
  ensureLoginRole,
  ensureOwner,
  tenantObjects,
  type CreatedObject,
  type Steps,
} from './tenant-objects.ts';

/** How a tenant's job ended, as far as this process saw it. */
export type JobOutcome =
  | { readonly state: 'active' }
  | { readonly state: 'failed'; readonly reason: JobError }
  /** A drop finished (or the job found nothing left to do). */
  | { readonly state: 'done' }
  /** The job failed for now and will be tried again. */
  | { readonly state: 'retrying'; readonly reason: JobError };

export interface ProvisionerOptions {
  readonly database: Database;
  readonly store: TenantStore;
  readonly clusters: ClusterStore;
  /** CONTROL_PLANE_SECRETS_DIR; absent: jobs on clusters fail (none are made without it). */
  readonly secretsDir: string | undefined;
  readonly logger: FastifyBaseLogger;
  /** A tenant's state changed (a new version): publish the invalidation. */
  readonly onChange: () => void;
  /** An attempt of a job failed. */
  readonly onFailure?: (action: JobAction) => void;
  /** Default 2000 ms. */
  readonly pollIntervalMs?: number;
  /** Attempts of a create that meets a transient failure (cluster down, full); default 3. */
  readonly createAttempts?: number;
  /** Starts and stops computes (wake and suspend jobs); absent: those jobs fail. */
  readonly compute?: ComputeDriver;
  /** Live sessions of the tenant across the fleet (Redis leases); absent: unknown. */
  readonly liveSessions?: (tenantId: string) => Promise<number>;
}

const CONCURRENCY = 4;
/** Attempts of a wake or suspend before it is given up (its error stays in GET's `compute`). */
const COMPUTE_ATTEMPTS = 8;
const RETRY_BACKOFF = { baseMs: 500, maxMs: 60_000 } as const;

export class Provisioner {
  readonly #options: ProvisionerOptions;
  readonly #running = new Map<string, Promise<void>>();
  readonly #waiters = new Map<string, Set<(outcome: JobOutcome) => void>>();
  #pumping: Promise<void> | undefined;
  #again = false;
  #pollTimer: NodeJS.Timeout | undefined;
  #closed = false;

  constructor(options: ProvisionerOptions) {
    this.#options = options;
  }

  start(): void {
    this.#pollTimer = setInterval(() => this.kick(), this.#options.pollIntervalMs ?? 2000).unref();
    this.kick();
  }

  /** Claims and starts due jobs, up to the concurrency. */
  kick(): void {
    if (this.#closed) return;
    if (this.#pumping !== undefined) {
      this.#again = true;
      return;
    }
    this.#pumping = this.#pump()
      .catch((error: unknown) => this.#options.logger.warn({ err: error }, 'cannot read provisioning jobs; retried at the next poll'))
      .finally(() => {
        this.#pumping = undefined;
        if (this.#again) this.kick();
      });
  }

  /** The outcome of the tenant's job as this process sees it end, or undefined after `timeoutMs`. */
  waitFor(tenantId: string, timeoutMs: number): Promise<JobOutcome | undefined> {
    return new Promise((resolve) => {
      const waiters = this.#waiters.get(tenantId) ?? new Set();
      this.#waiters.set(tenantId, waiters);
      const done = (outcome: JobOutcome | undefined) => {
        clearTimeout(timer);
        waiters.delete(done);
        if (waiters.size === 0 && this.#waiters.get(tenantId) === waiters) this.#waiters.delete(tenantId);
        resolve(outcome);
      };
      const timer = setTimeout(() => done(undefined), timeoutMs).unref();
      waiters.add(done);
    });
  }

  /** Stops claiming; jobs in progress finish (their leases keep others off until then). */
  async close(): Promise<void> {
    this.#closed = true;
    clearInterval(this.#pollTimer);
    await this.#pumping;
    await Promise.allSettled(this.#running.values());
  }

  async #pump(): Promise<void> {
    do {
      this.#again = false;
      while (!this.#closed && this.#running.size < CONCURRENCY) {
        const job = await claimJob(this.#options.database, [...this.#running.keys()]);
        if (job === undefined) break;
        const run = this.#run(job).finally(() => {
          this.#running.delete(job.tenantId);
          this.kick();
        });
        this.#running.set(job.tenantId, run);
      }
    } while (this.#again && !this.#closed);
  }

  async #run(job: Job): Promise<void> {
    const { database, logger } = this.#options;
    const renewal = setInterval(() => void renewLease(database, job).catch(() => {}), (LEASE_SECONDS * 1000) / 3).unref();
    try {
      await this.#attempt(job);
    } catch (error) {
      const reason = jobErrorOf(error);
      if (reason.code === ErrorCode.Internal)
        logger.error({ err: error, tenant: job.tenantId, action: job.action }, 'provisioning job failed');
      await this.#failed(job, error, reason).catch((cause: unknown) =>
        logger.warn({ err: cause, tenant: job.tenantId }, 'cannot record a provisioning failure; the job is retried when its lease ends'),
      );
    } finally {
      clearInterval(renewal);
    }
  }

  async #attempt(job: Job): Promise<void> {
    const cluster = job.clusterId === null ? undefined : (await this.#options.clusters.require(job.clusterId)).cluster;
    switch (job.action) {
      case JobAction.Wake:
      case JobAction.Suspend:
        return this.#compute(job, job.action, cluster);
    }
    if (cluster === undefined) throw new Error(`a ${job.action} job names no cluster`);
    switch (job.action) {
      case JobAction.Create:
        return this.#create(job, cluster);
      case JobAction.Rollback:
        return this.#rollback(job, cluster);
      case JobAction.Drop:
        return this.#drop(job, cluster);
    }
  }

  /**
   * Wakes or suspends the tenant's compute through the driver. A driver that is done (local)
   * makes a woken tenant `active` here; one that only took the request (the webhook) leaves the
   * status to the platform's PATCH. A suspend finds the tenant `sleeping` already; if a session
   * got in before the gateways heard of it, the suspend is called off instead.
   */
  async #compute(job: Job, action: ComputeAction, cluster: Cluster | undefined): Promise<void> {
    const { store, compute, liveSessions, logger } = this.#options;
    const stored = await store.get(job.tenantId, { secrets: false });
    if (stored === undefined || stored.tenant.status !== TenantStatus.Sleeping)
      return this.#finish(job, { compute: null }, { state: 'done' });
    if (compute === undefined) throw new Error('no compute driver is configured');
    if (action === 'suspend' && liveSessions !== undefined && (await liveSessions(job.tenantId)) > 0) {
      logger.info({ tenant: job.tenantId }, 'suspend called off: a session arrived');
      return this.#finish(job, { status: TenantStatus.Active, compute: null }, { state: 'done' });
    }
    const result = await compute.run(action, { tenant: job.tenantId, cluster });
    logger.info({ tenant: job.tenantId, action, driver: compute.name, result }, action === 'wake' ? 'compute woken' : 'compute suspended');
    if (action === 'suspend') return this.#finish(job, { compute: null, wakeIfAsked: true }, { state: 'done' });
    if (result === 'accepted') return this.#finish(job, {}, { state: 'done' });
    return this.#finish(job, { status: TenantStatus.Active, compute: null }, { state: 'active' });
  }

  async #create(job: Job, cluster: Cluster): Promise<void> {
    const { store } = this.#options;
    const stored = await store.get(job.tenantId, { secrets: true });
    if (stored === undefined) return this.#finish(job, {}, { state: 'done' });
    await this.#onCluster(cluster, job, async (steps) => {
      await ensureOwner(steps);
      await ensureDatabase(steps);
      for (const role of stored.tenant.roles) await ensureLoginRole(steps, backendRoleName(job.tenantId, role.name), role.scramSecret);
    });
    this.#options.logger.info({ tenant: job.tenantId, cluster: cluster.id }, 'tenant provisioned');
    await this.#finish(job, { provisioning: { cluster: cluster.id, state: ProvisioningState.Active } }, { state: 'active' });
  }

  /** Undoes what the failed create made (only that), then the tenant is `failed`. */
  async #rollback(job: Job, cluster: Cluster): Promise<void> {
    const reason = job.lastError ?? { code: ErrorCode.Internal, message: 'provisioning failed' };
    if (job.created.length > 0) {
      await this.#onCluster(cluster, job, async ({ client, objects, created }) => {
        await dropDatabase(client, objects, created);
        const roles = [...created].filter((o) => o.startsWith('role:')).map((o) => o.slice('role:'.length));
        // The owner last: the login roles are its members.
        roles.sort((a, b) => Number(a === objects.owner) - Number(b === objects.owner));
        for (const name of roles) await dropRole(client, objects, name, created);
      });
    }
    this.#options.logger.warn({ tenant: job.tenantId, cluster: cluster.id, reason }, 'tenant provisioning failed and was rolled back');
    await this.#finish(
      job,
      { provisioning: { cluster: cluster.id, state: ProvisioningState.Failed, reason } },
      { state: 'failed', reason },
    );
  }

  /** A deleted tenant's database and roles (DELETE ?dropDatabase=true). */
  async #drop(job: Job, cluster: Cluster): Promise<void> {
    await this.#onCluster(cluster, job, async ({ client, objects, created }) => {
      await dropDatabase(client, objects, created);
      for (const name of job.spec.roles ?? []) await dropRole(client, objects, name, created);
      await dropRole(client, objects, objects.owner, created);
    });
    this.#options.logger.info({ tenant: job.tenantId, cluster: cluster.id }, "deleted tenant's database dropped");
    await this.#finish(job, {}, { state: 'done' });
  }

  async #onCluster(cluster: Cluster, job: Job, work: (steps: Steps) => Promise<void>): Promise<void> {
    const created = new Set<CreatedObject>(job.created);
    const record = async (object: CreatedObject) => {
      await recordCreated(this.#options.database, job, object);
      created.add(object);
    };
    const forget = async (object: CreatedObject) => {
      await forgetCreated(this.#options.database, job, object);
      created.delete(object);
    };
    const { secretsDir } = this.#options;
    if (secretsDir === undefined) throw new Error('CONTROL_PLANE_SECRETS_DIR is not set: no cluster can be reached');
    await withClusterAdmin(cluster, secretsDir, 'postgres', (client) =>
      work({ client, cluster: cluster.id, objects: tenantObjects(job.tenantId), created, record, forget }),
    );
  }

  async #finish(job: Job, change: JobOutcomeChange, outcome: JobOutcome): Promise<void> {
    if (!(await this.#options.store.finishJob(job, change))) return;
    if (change.provisioning !== undefined || change.status !== undefined) this.#options.onChange();
    // A suspend may have turned into a wake: run it now.
    if (change.wakeIfAsked === true) this.kick();
    this.#notify(job.tenantId, outcome);
  }

  /** A create that cannot succeed becomes its rollback; anything else is tried again later. */
  async #failed(job: Job, error: unknown, reason: JobError): Promise<void> {
    const { database, logger, createAttempts = 3 } = this.#options;
    this.#options.onFailure?.(job.action);
    if (job.action === JobAction.Create && !(isTransient(error) && job.attempts < createAttempts)) {
      await toRollback(database, job, reason);
      this.kick();
      return;
    }
    const computing = job.action === JobAction.Wake || job.action === JobAction.Suspend;
    if (computing) await this.#options.store.recordComputeError(job.tenantId, reason);
    if (computing && job.attempts >= COMPUTE_ATTEMPTS) {
      logger.error({ tenant: job.tenantId, action: job.action, attempts: job.attempts, reason }, 'compute job given up');
      await this.#options.store.finishJob(job, {});
      return;
    }
    const backoff = backoffCeiling(job.attempts - 1, RETRY_BACKOFF);
    const delay = backoff / 2 + Math.random() * (backoff / 2);
    logger.warn({ tenant: job.tenantId, action: job.action, attempts: job.attempts, reason }, 'provisioning job failed; retrying');
    await rescheduleJob(database, job, delay, reason);
    if (job.action !== JobAction.Create) this.#notify(job.tenantId, { state: 'retrying', reason });
    setTimeout(() => this.kick(), delay).unref();
  }

  #notify(tenantId: string, outcome: JobOutcome): void {
    for (const done of [...(this.#waiters.get(tenantId) ?? [])]) done(outcome);
  }
}

/** An error as a job records it: our API errors as they are, anything else as internal. */
export function jobErrorOf(error: unknown): JobError {
  const { code, message, details } = error as { code?: unknown; message?: string; details?: Record<string, unknown> };
  if (typeof code !== 'string' || !code.startsWith('TG_ERR_')) {
    return { code: ErrorCode.Internal, message: "internal error (see the control plane's log)" };
  }
  const { transient: _transient, ...rest } = details ?? {};
  return { code, message: message ?? code, ...(Object.keys(rest).length === 0 ? {} : { details: rest }) };
}
