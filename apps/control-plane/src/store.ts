// The repository: tenants and their roles in the database, every write one transaction that
// takes a new version from the shared sequence and, when invalidations are published, leaves an
// outbox row for the publisher. Nothing here knows HTTP beyond the error table.
import { ReplicationMode, TenantStatus, type Tenant, type TenantRole } from '@tenantgate/tenancy';
import type { Database, Queryable } from './db/database.ts';
import { ADVISORY_LOCK_CLASS } from './db/migrations.ts';
import {
  notFound,
  tenantNotFound,
  TenantExistsError,
  TenantNotProvisionedError,
  TenantNotSleepingError,
  VersionConflictError,
  withDetails,
} from './errors.ts';
import {
  deleteJob,
  hasJob,
  insertJob,
  JobAction,
  jobActionOf,
  suspendToWake,
  wakeAfter,
  type Job,
  type JobError,
  type JobSpec,
} from './clusters/jobs.ts';

export const ProvisioningState = {
  /** The database and roles are being made (or a failed attempt undone); no route yet. */
  Provisioning: 'provisioning',
  Active: 'active',
  /** Nothing is left on the cluster; `reason` says why. POST the tenant again to retry. */
  Failed: 'failed',
} as const;
export type ProvisioningState = (typeof ProvisioningState)[keyof typeof ProvisioningState];

/** A tenant's compute while it is being started or stopped (cleared when its status changes). */
export interface ComputeState {
  state: 'waking' | 'suspending';
  /** When it was asked for (ISO 8601). */
  since: string;
  /** The last failed attempt of the driver. */
  lastError?: JobError;
}

/** What a finished job changes of its tenant. */
export interface JobOutcomeChange {
  provisioning?: Provisioning;
  status?: TenantStatus;
  /** null clears it. */
  compute?: ComputeState | null;
  /** A suspend: if a wake was asked for while it ran (read here, under the lock), it becomes that wake. */
  wakeIfAsked?: boolean;
}

/** How long a wake asked for counts as under way: past it, another request asks again. */
export const WAKE_PENDING_MS = 60_000;

/** A tenant the control plane provisions on one of its clusters. */
export interface Provisioning {
  cluster: string;
  state: ProvisioningState;
  reason?: JobError;
}

/** A tenant as stored: the record (roles with their SCRAM secrets) and its bookkeeping. */
export interface StoredTenant {
  tenant: Tenant;
  /** Absent for a tenant whose backend was given by address. */
  provisioning?: Provisioning;
  /** Present while its compute is being woken or suspended. */
  compute?: ComputeState;
  version: number;
  createdAt: string;
  updatedAt: string;
}

/** What a write must match: one of the versions of an If-Match header, or anything. */
export interface WriteCondition {
  ifMatch?: readonly number[];
}

/** An invalidation waiting in the outbox; `version` is null for a deleted tenant. */
export interface PendingInvalidation {
  seq: number;
  id: string;
  version: number | null;
  /** The lowest version a cache may hold from now on. */
  floor: number;
}

export interface TenantPage {
  items: StoredTenant[];
  /** Whether tenants follow the last item. */
  more: boolean;
}

export interface StoreOptions {
  /** Record an outbox row with every write (only when someone publishes them: Redis). */
  readonly outbox: boolean;
}

export const OUTBOX_LOCK_ID = 2;

type RecordFields = Omit<Tenant, 'id' | 'roles'>;

interface TenantRow {
  id: string;
  /** `replication` is absent in records stored before it existed. */
  record: Omit<RecordFields, 'replication'> & Partial<Pick<RecordFields, 'replication'>>;
  version: string | number | bigint;
  created_at: Date | string;
  updated_at: Date | string;
  roles: TenantRole[];
  provisioning: Provisioning | null;
  compute: ComputeState | null;
}

const ROLE_WITH_SECRET = `json_build_object('name', r.name, 'scramSecret', r.scram_secret, 'backendUser', r.backend_user, 'authMode', r.auth_mode)`;
const ROLE_WITHOUT_SECRET = `json_build_object('name', r.name, 'backendUser', r.backend_user, 'authMode', r.auth_mode)`;

function selectTenants(withSecrets: boolean): string {
  const role = withSecrets ? ROLE_WITH_SECRET : ROLE_WITHOUT_SECRET;
  return `SELECT t.id, t.record, t.version, t.created_at, t.updated_at, t.provisioning, t.compute,
    COALESCE((SELECT json_agg(json_strip_nulls(${role}) ORDER BY r.name)
              FROM tenant_roles r WHERE r.tenant_id = t.id), '[]'::json) AS roles
    FROM tenants t`;
}

export class TenantStore {
  readonly #db: Database;
  readonly #outbox: boolean;

  constructor(db: Database, options: StoreOptions) {
    this.#db = db;
    this.#outbox = options.outbox;
  }

  get database(): Database {
    return this.#db;
  }

  /**
   * Creates the tenant. With `cluster`, it is provisioned there: its state is `provisioning` and
   * a create job is left for the provisioner, in the same transaction; a tenant whose earlier
   * provisioning failed is replaced (the retry).
   * @throws TenantExistsError
   */
  async create(tenant: Tenant, cluster?: string): Promise<StoredTenant> {
    return this.#db.transaction(async (tx) => {
      const inserted = await tx.query(
        `INSERT INTO tenants (id, record, version) VALUES ($1, $2, nextval('tenant_version_seq'))
         ON CONFLICT (id) DO NOTHING RETURNING version`,
        [tenant.id, JSON.stringify(recordOf(tenant))],
      );
      const replaced = inserted.length === 0;
      if (replaced) await replaceFailed(tx, tenant, cluster);
      for (const role of tenant.roles) await insertRole(tx, tenant.id, role);
      if (cluster !== undefined) {
        // A deleted tenant of this id whose database is still being dropped.
        if (await hasJob(tx, tenant.id)) throw new TenantExistsError(tenant.id);
        const provisioning: Provisioning = { cluster, state: ProvisioningState.Provisioning };
        await tx.query('UPDATE tenants SET provisioning = $2 WHERE id = $1', [tenant.id, JSON.stringify(provisioning)]);
        await insertJob(tx, tenant.id, JobAction.Create, cluster, {});
      }
      return this.#finish(tx, tenant.id, replaced);
    });
  }

  /**
   * Ends a job: removes it (or turns a suspend into the wake asked for meanwhile) and applies
   * `change` to the tenant, in one transaction; a change the gateways see (provisioning state,
   * status) is a new version, so they drop what they cached. False when the job's lease was lost.
   */
  async finishJob(job: Job, change: JobOutcomeChange = {}): Promise<boolean> {
    return this.#db.transaction(async (tx) => {
      // The tenant's row first, then the job's: the order requestWake and delete lock them in.
      const exists = (await tx.query('SELECT 1 FROM tenants WHERE id = $1 FOR UPDATE', [job.tenantId])).length > 0;
      const held = await tx.query<{ then_wake: boolean }>(
        'SELECT then_wake FROM provisioning_jobs WHERE tenant_id = $1 AND lease_token = $2 FOR UPDATE',
        [job.tenantId, job.leaseToken],
      );
      if (held.length === 0) return false;
      const woken = change.wakeIfAsked === true && held[0].then_wake;
      if (woken) await suspendToWake(tx, job);
      else await deleteJob(tx, job);
      if (!exists) return true;
      if (change.compute !== undefined) await setCompute(tx, job.tenantId, woken ? waking() : change.compute);
      if (change.provisioning !== undefined) {
        await tx.query('UPDATE tenants SET provisioning = $2 WHERE id = $1', [job.tenantId, JSON.stringify(change.provisioning)]);
      }
      if (change.status !== undefined) await setStatus(tx, job.tenantId, change.status);
      if (change.provisioning !== undefined || change.status !== undefined) await this.#finish(tx, job.tenantId, true);
      return true;
    });
  }

  /**
   * A gateway asks to wake a sleeping tenant: one wake job however many ask (across control
   * planes: the job's primary key), or a wake right after the suspend under way.
   * @returns `active` when there is nothing to wake, `waking` otherwise
   * @throws TenantNotFound, TenantNotSleepingError (suspended, maintenance, being provisioned)
   */
  async requestWake(id: string, cluster: string | null): Promise<'active' | 'waking'> {
    return this.#db.transaction(async (tx) => {
      const current = await lockTenant(tx, id, {});
      if (current.tenant.status === TenantStatus.Active) return 'active';
      if (current.tenant.status !== TenantStatus.Sleeping) throw new TenantNotSleepingError(id, current.tenant.status);
      const action = await jobActionOf(tx, id);
      if (action === JobAction.Suspend) await wakeAfter(tx, id);
      if (action === JobAction.Suspend || action === JobAction.Wake) return 'waking';
      if (action !== undefined) throw new TenantNotSleepingError(id, `being provisioned (${action})`);
      const { compute } = current;
      // The driver took a wake a moment ago and the platform is still starting the compute.
      if (compute?.state === 'waking' && Date.now() - Date.parse(compute.since) < WAKE_PENDING_MS) return 'waking';
      await insertJob(tx, id, JobAction.Wake, cluster, {});
      await setCompute(tx, id, waking());
      return 'waking';
    });
  }

  /**
   * Puts an idle tenant to sleep: `sleeping` at once (a new version: gateways hold new clients
   * and ask for a wake instead of reaching a compute that is stopping) and a suspend job, in one
   * transaction. False when it is no longer active or has a job.
   */
  async startSuspend(id: string, cluster: string | null): Promise<boolean> {
    return this.#db.transaction(async (tx) => {
      const rows = await tx.query<TenantRow>(`${selectTenants(false)} WHERE t.id = $1 FOR UPDATE OF t`, [id]);
      if (rows.length === 0 || storedOf(rows[0]).tenant.status !== TenantStatus.Active || (await hasJob(tx, id))) return false;
      await setStatus(tx, id, TenantStatus.Sleeping);
      await setCompute(tx, id, { state: 'suspending', since: new Date().toISOString() });
      await insertJob(tx, id, JobAction.Suspend, cluster, {});
      await this.#finish(tx, id, true);
      return true;
    });
  }

  /** Records a failed attempt of the compute driver, for GET to show. */
  async recordComputeError(id: string, error: JobError): Promise<void> {
    await this.#db.query(
      `UPDATE tenants SET compute = jsonb_set(compute, '{lastError}', $2::jsonb) WHERE id = $1 AND compute IS NOT NULL`,
      [id, JSON.stringify(error)],
    );
  }

  /** Active tenants with idleSuspendSeconds, and the cluster they are on. */
  async idleCandidates(): Promise<{ id: string; idleSuspendSeconds: number; cluster: string | null }[]> {
    const rows = await this.#db.query<{ id: string; idle: number; cluster: string | null }>(
      `SELECT id, (record->>'idleSuspendSeconds')::int AS idle, provisioning->>'cluster' AS cluster FROM tenants
       WHERE record->>'status' = 'active' AND record ? 'idleSuspendSeconds'`,
    );
    return rows.map((row) => ({ id: row.id, idleSuspendSeconds: Number(row.idle), cluster: row.cluster }));
  }

  /** Tenants on the cluster, other than `except`, that are awake or being woken: its compute serves them. */
  async awakeOnCluster(cluster: string, except: string): Promise<number> {
    const [{ n }] = await this.#db.query<{ n: number }>(
      `SELECT count(*)::int AS n FROM tenants WHERE provisioning->>'cluster' = $1 AND id <> $2
         AND (record->>'status' <> 'sleeping' OR compute->>'state' = 'waking')`,
      [cluster, except],
    );
    return Number(n);
  }

  /** The tenant, or undefined; role secrets only when asked for (the routing view). */
  async get(id: string, options: { secrets: boolean }): Promise<StoredTenant | undefined> {
    const rows = await this.#db.query<TenantRow>(`${selectTenants(options.secrets)} WHERE t.id = $1`, [id]);
    return rows.length === 0 ? undefined : storedOf(rows[0]);
  }

  /** Tenants in id order after `after`, without role secrets. */
  async list(options: { limit: number; after?: string }): Promise<TenantPage> {
    // Two statements, not `$1 IS NULL OR t.id > $1`: under a generic plan that form filters
    // every row instead of starting the index scan at the cursor, so deep pages would get slower.
    const rows =
      options.after === undefined
        ? await this.#db.query<TenantRow>(`${selectTenants(false)} ORDER BY t.id LIMIT $1`, [options.limit + 1])
        : await this.#db.query<TenantRow>(`${selectTenants(false)} WHERE t.id > $1::text ORDER BY t.id LIMIT $2`, [
            options.after,
            options.limit + 1,
          ]);
    return { items: rows.slice(0, options.limit).map(storedOf), more: rows.length > options.limit };
  }

  /**
   * Replaces the record fields (not the roles) with what `change` makes of the current tenant.
   * `change` runs inside the transaction, with the row locked; throwing rolls everything back.
   */
  async update(id: string, change: (current: Tenant) => Tenant, condition: WriteCondition = {}): Promise<StoredTenant> {
    return this.#db.transaction(async (tx) => {
      const current = await lockTenant(tx, id, condition);
      const next = change(current.tenant);
      await tx.query('UPDATE tenants SET record = $2 WHERE id = $1', [id, JSON.stringify(recordOf(next))]);
      // The platform sets the status when its compute has started or stopped: that ends a wake or suspend.
      if (next.status !== current.tenant.status) await setCompute(tx, id, null);
      return this.#finish(tx, id, true);
    });
  }

  /**
   * Sets (adds or replaces) one role; `created` says which. `apply` runs with the tenant locked
   * before the write (setting the role on a provisioned tenant's cluster); throwing changes nothing.
   */
  async putRole(
    id: string,
    role: TenantRole,
    condition: WriteCondition = {},
    apply?: (current: StoredTenant) => Promise<void>,
  ): Promise<{ stored: StoredTenant; created: boolean }> {
    return this.#db.transaction(async (tx) => {
      const current = await lockTenant(tx, id, condition);
      await apply?.(current);
      const removed = await tx.query('DELETE FROM tenant_roles WHERE tenant_id = $1 AND name = $2 RETURNING name', [id, role.name]);
      await insertRole(tx, id, role);
      return { stored: await this.#finish(tx, id, true), created: removed.length === 0 };
    });
  }

  /** @throws NotFoundError when the tenant or the role does not exist */
  async deleteRole(
    id: string,
    name: string,
    condition: WriteCondition = {},
    apply?: (current: StoredTenant) => Promise<void>,
  ): Promise<StoredTenant> {
    return this.#db.transaction(async (tx) => {
      const current = await lockTenant(tx, id, condition);
      if (!current.tenant.roles.some((role) => role.name === name)) throw notFound(`tenant "${id}" has no role "${name}"`);
      await apply?.(current);
      await tx.query('DELETE FROM tenant_roles WHERE tenant_id = $1 AND name = $2', [id, name]);
      return this.#finish(tx, id, true);
    });
  }

  /**
   * Deletes the tenant and its roles; returns the floor version recorded for caches. `plan` sees
   * the tenant under the lock and may refuse (throw) or return a drop job for its cluster.
   */
  async delete(
    id: string,
    condition: WriteCondition = {},
    plan?: (current: StoredTenant) => { cluster: string; spec: JobSpec } | undefined,
  ): Promise<{ floor: number }> {
    return this.#db.transaction(async (tx) => {
      const current = await lockTenant(tx, id, condition);
      const drop = plan?.(current);
      // A wake or suspend of a tenant that is going has nothing left to do.
      await tx.query(`DELETE FROM provisioning_jobs WHERE tenant_id = $1 AND action IN ('wake', 'suspend')`, [id]);
      const left = await jobActionOf(tx, id);
      if (left !== undefined) throw new TenantNotProvisionedError(id, `busy (a ${left} job)`, 'delete it once that is done');
      await tx.query('DELETE FROM tenants WHERE id = $1', [id]);
      if (drop !== undefined) await insertJob(tx, id, JobAction.Drop, drop.cluster, drop.spec);
      // A version from the same sequence: higher than any the tenant ever had, lower than any
      // a re-created tenant of the same id will get.
      const [{ floor }] = await tx.query<{ floor: string }>(`SELECT nextval('tenant_version_seq') AS floor`);
      if (this.#outbox) await insertOutbox(tx, id, null, Number(floor));
      return { floor: Number(floor) };
    });
  }

  async count(): Promise<number> {
    const [{ n }] = await this.#db.query<{ n: number }>('SELECT count(*)::integer AS n FROM tenants');
    return Number(n);
  }

  async ping(): Promise<void> {
    await this.#db.query('SELECT 1');
  }

  async pendingInvalidations(): Promise<number> {
    const [{ n }] = await this.#db.query<{ n: number }>('SELECT count(*)::integer AS n FROM invalidation_outbox');
    return Number(n);
  }

  /**
   * Hands up to `limit` outbox rows, oldest first, to `publish` one at a time, and deletes those
   * it published. Under an advisory lock: one drainer at a time across control planes, so a
   * tenant's invalidations reach Redis in version order. Returns how many were published and
   * the error that stopped publishing, if any ('busy' when another drainer holds the lock).
   */
  async drainInvalidations(
    limit: number,
    publish: (invalidation: PendingInvalidation) => Promise<void>,
  ): Promise<{ published: number; error?: unknown } | 'busy'> {
    return this.#db.transaction(async (tx) => {
      const [{ locked }] = await tx.query<{ locked: boolean }>('SELECT pg_try_advisory_xact_lock($1, $2) AS locked', [
        ADVISORY_LOCK_CLASS,
        OUTBOX_LOCK_ID,
      ]);
      if (!locked) return 'busy';
      const rows = await tx.query<{ seq: string; tenant_id: string; version: string | null; floor: string }>(
        'SELECT seq, tenant_id, version, floor FROM invalidation_outbox ORDER BY seq LIMIT $1',
        [limit],
      );
      const done: number[] = [];
      let error: unknown;
      for (const row of rows) {
        const invalidation = {
          seq: Number(row.seq),
          id: row.tenant_id,
          version: row.version === null ? null : Number(row.version),
          floor: Number(row.floor),
        };
        try {
          await publish(invalidation);
        } catch (cause) {
          error = cause;
          break;
        }
        done.push(invalidation.seq);
      }
      // Only the rows read: a row with a lower seq may commit after this read.
      for (const seq of done) await tx.query('DELETE FROM invalidation_outbox WHERE seq = $1', [seq]);
      return error === undefined ? { published: done.length } : { published: done.length, error };
    });
  }

  /** Bumps the version (unless the insert took one), records the outbox row, reads the result. */
  async #finish(tx: Queryable, id: string, bump = false): Promise<StoredTenant> {
    if (bump) {
      await tx.query(`UPDATE tenants SET version = nextval('tenant_version_seq'), updated_at = now() WHERE id = $1`, [id]);
    }
    const rows = await tx.query<TenantRow>(`${selectTenants(true)} WHERE t.id = $1`, [id]);
    const stored = storedOf(rows[0]);
    if (this.#outbox) await insertOutbox(tx, id, stored.version, stored.version);
    return stored;
  }
}

async function lockTenant(tx: Queryable, id: string, condition: WriteCondition): Promise<StoredTenant> {
  const rows = await tx.query<TenantRow>(`${selectTenants(true)} WHERE t.id = $1 FOR UPDATE OF t`, [id]);
  if (rows.length === 0) throw tenantNotFound(id);
  const current = storedOf(rows[0]);
  if (condition.ifMatch !== undefined && !condition.ifMatch.includes(current.version)) {
    throw withDetails(new VersionConflictError(id, current.version, condition.ifMatch.join(', ') || 'none'), {
      version: current.version,
    });
  }
  return current;
}

function waking(): ComputeState {
  return { state: 'waking', since: new Date().toISOString() };
}

/** The status inside the stored record, for changes that are not a whole-record write. */
async function setStatus(tx: Queryable, id: string, status: TenantStatus): Promise<void> {
  await tx.query(`UPDATE tenants SET record = jsonb_set(record, '{status}', to_jsonb($2::text)) WHERE id = $1`, [id, status]);
}

async function setCompute(tx: Queryable, id: string, compute: ComputeState | null): Promise<void> {
  await tx.query('UPDATE tenants SET compute = $2 WHERE id = $1', [id, compute === null ? null : JSON.stringify(compute)]);
}

/** A tenant whose provisioning failed may be created again; any other existing tenant may not. */
async function replaceFailed(tx: Queryable, tenant: Tenant, cluster: string | undefined): Promise<void> {
  const current = await lockTenant(tx, tenant.id, {});
  if (cluster === undefined || current.provisioning?.state !== ProvisioningState.Failed) throw new TenantExistsError(tenant.id);
  await tx.query('UPDATE tenants SET record = $2 WHERE id = $1', [tenant.id, JSON.stringify(recordOf(tenant))]);
  await tx.query('DELETE FROM tenant_roles WHERE tenant_id = $1', [tenant.id]);
}

async function insertRole(tx: Queryable, tenantId: string, role: TenantRole): Promise<void> {
  await tx.query('INSERT INTO tenant_roles (tenant_id, name, scram_secret, backend_user, auth_mode) VALUES ($1, $2, $3, $4, $5)', [
    tenantId,
    role.name,
    role.scramSecret,
    role.backendUser ?? null,
    role.authMode ?? null,
  ]);
}

async function insertOutbox(tx: Queryable, id: string, version: number | null, floor: number): Promise<void> {
  await tx.query('INSERT INTO invalidation_outbox (tenant_id, version, floor) VALUES ($1, $2, $3)', [id, version, floor]);
}

/** The record column holds the tenant without its id and roles (their own column and table). */
function recordOf(tenant: Tenant): RecordFields {
  const { id: _id, roles: _roles, ...record } = tenant;
  return record;
}

function storedOf(row: TenantRow): StoredTenant {
  // Records stored before the field existed allow no replication.
  const { replication = ReplicationMode.None, ...record } = row.record;
  return {
    tenant: { id: row.id, ...record, replication, roles: row.roles },
    ...(row.provisioning === null ? {} : { provisioning: row.provisioning }),
    ...(row.compute === null ? {} : { compute: row.compute }),
    version: Number(row.version),
    createdAt: isoTime(row.created_at),
    updatedAt: isoTime(row.updated_at),
  };
}

function isoTime(value: Date | string): string {
  return (value instanceof Date ? value : new Date(value)).toISOString();
}
