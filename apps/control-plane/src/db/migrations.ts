// Versioned schema migrations, applied in order at start-up (and by `npm run migrate`), each
// recorded in control_plane_migrations. The whole run is one transaction under an advisory
// lock, so control planes starting together apply each migration once, and a failure leaves
// nothing half-applied. A migration, once released, is never edited: add a new one.
import type { Database } from './database.ts';

export interface Migration {
  readonly version: number;
  readonly name: string;
  /** One statement each (PGlite's extended protocol runs one statement per query). */
  readonly statements: readonly string[];
}

/** pg_advisory_xact_lock(classid, objid): "tg" and 1 (migrations); the outbox uses 2. */
export const ADVISORY_LOCK_CLASS = 0x7467;
export const MIGRATION_LOCK_ID = 1;

export const MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    name: 'tenants, roles and the invalidation outbox',
    statements: [
      // One sequence for every tenant: a deleted and re-created tenant never reuses a version,
      // so a cache floor set at the delete still refuses the old route.
      `CREATE SEQUENCE tenant_version_seq AS bigint`,
      `CREATE TABLE tenants (
         id text COLLATE "C" PRIMARY KEY,
         record jsonb NOT NULL,
         version bigint NOT NULL,
         created_at timestamptz NOT NULL DEFAULT now(),
         updated_at timestamptz NOT NULL DEFAULT now()
       )`,
      `CREATE TABLE tenant_roles (
         tenant_id text COLLATE "C" NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
         name text COLLATE "C" NOT NULL,
         scram_secret text NOT NULL CHECK (scram_secret LIKE 'SCRAM-SHA-256$%'),
         backend_user text,
         PRIMARY KEY (tenant_id, name)
       )`,
      // Written in the same transaction as the tenant change, drained to Redis after commit.
      `CREATE TABLE invalidation_outbox (
         seq bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
         tenant_id text NOT NULL,
         version bigint,
         floor bigint NOT NULL,
         created_at timestamptz NOT NULL DEFAULT now()
       )`,
    ],
  },
  {
    version: 2,
    name: "a role's own authMode",
    statements: [`ALTER TABLE tenant_roles ADD COLUMN auth_mode text`],
  },
  {
    version: 3,
    name: 'clusters, provisioned tenants, computes and the jobs that act on them',
    statements: [
      `CREATE TABLE clusters (
         id text COLLATE "C" PRIMARY KEY,
         record jsonb NOT NULL,
         created_at timestamptz NOT NULL DEFAULT now()
       )`,
      // { state, reason?, cluster } of a tenant the control plane provisions; null for the others.
      `ALTER TABLE tenants ADD COLUMN provisioning jsonb`,
      // { state: waking | suspending, since, lastError? } while its compute is being started or stopped.
      `ALTER TABLE tenants ADD COLUMN compute jsonb`,
      // Work on a cluster or a tenant's compute, written in the same transaction as the tenant
      // change that needs it and done after commit (clusters/provisioner.ts), so a control plane
      // that stops half-way leaves a row that the next one resumes. A lease keeps two control
      // planes off one job; one job per tenant at a time.
      `CREATE TABLE provisioning_jobs (
         tenant_id text COLLATE "C" PRIMARY KEY,
         action text NOT NULL CHECK (action IN ('create', 'rollback', 'drop', 'wake', 'suspend')),
         cluster_id text COLLATE "C" REFERENCES clusters (id),
         spec jsonb NOT NULL,
         created jsonb NOT NULL DEFAULT '[]',
         attempts integer NOT NULL DEFAULT 0,
         not_before timestamptz NOT NULL DEFAULT now(),
         lease_until timestamptz,
         lease_token text,
         last_error jsonb,
         -- A wake asked for while the compute was being suspended: done right after.
         then_wake boolean NOT NULL DEFAULT false
       )`,
    ],
  },
];

export interface MigrationResult {
  /** Versions applied by this call, in order; empty when the schema was up to date. */
  readonly applied: readonly number[];
  /** The schema version afterwards. */
  readonly version: number;
}

export async function migrate(db: Database, migrations: readonly Migration[] = MIGRATIONS): Promise<MigrationResult> {
  return db.transaction(async (tx) => {
    await tx.query('SELECT pg_advisory_xact_lock($1, $2)', [ADVISORY_LOCK_CLASS, MIGRATION_LOCK_ID]);
    await tx.query(`CREATE TABLE IF NOT EXISTS control_plane_migrations (
      version integer PRIMARY KEY,
      name text NOT NULL,
      applied_at timestamptz NOT NULL DEFAULT now()
    )`);
    const rows = await tx.query<{ version: number }>('SELECT version FROM control_plane_migrations');
    const done = new Set(rows.map((r) => Number(r.version)));
    const applied: number[] = [];
    for (const migration of [...migrations].sort((a, b) => a.version - b.version)) {
      if (done.has(migration.version)) continue;
      for (const statement of migration.statements) await tx.query(statement);
      await tx.query('INSERT INTO control_plane_migrations (version, name) VALUES ($1, $2)', [migration.version, migration.name]);
      applied.push(migration.version);
    }
    const version = Math.max(0, ...done, ...applied);
    return { applied, version };
  });
}
