// What a tenant owns on its cluster (docs/architecture.md, "Clusters"): a database named after
// the tenant, owned by a NOLOGIN role of the same name, with CONNECT revoked from PUBLIC; and one
// LOGIN role per tenant role, `<tenant>_<role>`, a member of the owner role, whose password is
// the tenant role's SCRAM secret (PostgreSQL stores a pre-computed `SCRAM-SHA-256$...` as is).
// Each object carries a comment naming its tenant, so a name someone else holds on the cluster
// is refused, never taken over. Every step is idempotent: a job run again finds what it made.
import pg from 'pg';
import { refused } from './cluster.ts';

/** The names of a tenant's objects on its cluster. */
export interface TenantObjects {
  readonly tenant: string;
  readonly database: string;
  readonly owner: string;
}

/** An object a job made (recorded before it is made, so a retry or a rollback knows it is ours). */
export type CreatedObject = `role:${string}` | `database:${string}`;

/** PostgreSQL's NAMEDATALEN - 1. */
const MAX_NAME_BYTES = 63;

export function tenantObjects(tenant: string): TenantObjects {
  return { tenant, database: tenant, owner: tenant };
}

/** The backend role of a tenant role: tenant ids have no "_", so no two tenants' names meet. */
export function backendRoleName(tenant: string, role: string): string {
  return `${tenant}_${role}`;
}

/** Why a role name cannot be provisioned for the tenant, or undefined. */
export function backendRoleProblem(tenant: string, role: string): string | undefined {
  const bytes = Buffer.byteLength(backendRoleName(tenant, role));
  if (bytes <= MAX_NAME_BYTES) return undefined;
  return `makes the backend role "${backendRoleName(tenant, role)}", ${bytes} bytes; PostgreSQL names are at most ${MAX_NAME_BYTES}`;
}

function marker(tenant: string): string {
  return `tenantgate tenant ${tenant}`;
}

const id = (name: string) => pg.escapeIdentifier(name);

export interface Steps {
  readonly client: pg.Client;
  readonly cluster: string;
  readonly objects: TenantObjects;
  /** What this job made so far; `record` is awaited before a CREATE, so a crash cannot lose it. */
  readonly created: ReadonlySet<CreatedObject>;
  readonly record: (object: CreatedObject) => Promise<void>;
  /** Takes back a record whose CREATE the server refused (so nothing was made). */
  readonly forget: (object: CreatedObject) => Promise<void>;
}

/**
 * Runs a CREATE recorded beforehand. A refusal by the server (a SQLSTATE: DDL is atomic) made
 * nothing, so the record is taken back: a name someone else took meanwhile is never dropped as
 * ours. A lost connection keeps it: the CREATE may have committed.
 */
async function create(steps: Steps, object: CreatedObject, statement: string): Promise<void> {
  await steps.record(object);
  try {
    await steps.client.query(statement);
  } catch (error) {
    const code = (error as { code?: unknown }).code;
    if (typeof code === 'string' && /^[0-9A-Z]{5}$/.test(code)) await steps.forget(object);
    throw error;
  }
}

/** The owner role, and the admin's membership in it (needed to create a database owned by it). */
export async function ensureOwner(steps: Steps): Promise<void> {
  const { client, objects } = steps;
  await ensureRoleExists(steps, objects.owner, `CREATE ROLE ${id(objects.owner)} NOLOGIN`);
  const [{ rolsuper }] = (await client.query<{ rolsuper: boolean }>('SELECT rolsuper FROM pg_roles WHERE rolname = current_user')).rows;
  if (!rolsuper) await client.query(`GRANT ${id(objects.owner)} TO CURRENT_USER`);
}

/** The database, owned by the owner role, reachable only by the owner role's members. */
export async function ensureDatabase(steps: Steps): Promise<void> {
  const { client, objects } = steps;
  const { rows } = await client.query<{ comment: string | null }>(
    `SELECT shobj_description(oid, 'pg_database') AS comment FROM pg_database WHERE datname = $1`,
    [objects.database],
  );
  const object: CreatedObject = `database:${objects.database}`;
  if (rows.length === 0) {
    await create(steps, object, `CREATE DATABASE ${id(objects.database)} OWNER ${id(objects.owner)}`);
  } else if (rows[0].comment !== marker(objects.tenant) && !steps.created.has(object)) {
    throw refused(steps.cluster, `database "${objects.database}" exists on the cluster and is not tenant "${objects.tenant}"'s`);
  }
  await client.query(`COMMENT ON DATABASE ${id(objects.database)} IS ${pg.escapeLiteral(marker(objects.tenant))}`);
  await client.query(`REVOKE CONNECT, TEMPORARY ON DATABASE ${id(objects.database)} FROM PUBLIC`);
  await client.query(`GRANT CONNECT, TEMPORARY ON DATABASE ${id(objects.database)} TO ${id(objects.owner)}`);
}

/** A login role with exactly this SCRAM secret, a member of the owner role. */
export async function ensureLoginRole(steps: Steps, name: string, scramSecret: string): Promise<void> {
  const { client, objects } = steps;
  const password = pg.escapeLiteral(scramSecret);
  const made = await ensureRoleExists(steps, name, `CREATE ROLE ${id(name)} LOGIN PASSWORD ${password} IN ROLE ${id(objects.owner)}`);
  if (made) return;
  await client.query(`ALTER ROLE ${id(name)} LOGIN PASSWORD ${password}`);
  await client.query(`GRANT ${id(objects.owner)} TO ${id(name)}`);
}

/** Creates the role with `statement` unless it exists as ours; true when it was created now. */
async function ensureRoleExists(steps: Steps, name: string, statement: string): Promise<boolean> {
  const { client, objects } = steps;
  const { rows } = await client.query<{ comment: string | null }>(
    `SELECT shobj_description(oid, 'pg_authid') AS comment FROM pg_roles WHERE rolname = $1`,
    [name],
  );
  const object: CreatedObject = `role:${name}`;
  const made = rows.length === 0;
  if (made) {
    await create(steps, object, statement);
  } else if (rows[0].comment !== marker(objects.tenant) && !steps.created.has(object)) {
    throw refused(steps.cluster, `role "${name}" exists on the cluster and is not tenant "${objects.tenant}"'s`);
  }
  await client.query(`COMMENT ON ROLE ${id(name)} IS ${pg.escapeLiteral(marker(objects.tenant))}`);
  return made;
}

/** Whether the role exists and is the tenant's (a role someone else holds is never dropped). */
export async function isTenantRole(client: pg.Client, objects: TenantObjects, name: string): Promise<boolean> {
  const { rows } = await client.query<{ comment: string | null }>(
    `SELECT shobj_description(oid, 'pg_authid') AS comment FROM pg_roles WHERE rolname = $1`,
    [name],
  );
  return rows.length > 0 && rows[0].comment === marker(objects.tenant);
}

/**
 * Hands what the role owns in the tenant's database to the owner role, then drops it.
 * `inDatabase` runs statements connected to the tenant's database (REASSIGN works per database).
 */
export async function dropLoginRole(
  client: pg.Client,
  objects: TenantObjects,
  name: string,
  inDatabase: (work: (db: pg.Client) => Promise<void>) => Promise<void>,
): Promise<void> {
  if (!(await isTenantRole(client, objects, name))) return;
  const exists = await client.query('SELECT 1 FROM pg_database WHERE datname = $1', [objects.database]);
  if (exists.rows.length > 0) {
    await inDatabase(async (db) => {
      await db.query(`REASSIGN OWNED BY ${id(name)} TO ${id(objects.owner)}`);
      await db.query(`DROP OWNED BY ${id(name)}`);
    });
  }
  await client.query(`DROP ROLE IF EXISTS ${id(name)}`);
}

/**
 * Drops the tenant's database, ending its sessions (WITH (FORCE), PostgreSQL 13+), when it is the
 * tenant's (its comment) or this job made it.
 */
export async function dropDatabase(client: pg.Client, objects: TenantObjects, created: ReadonlySet<CreatedObject>): Promise<void> {
  const { rows } = await client.query<{ comment: string | null }>(
    `SELECT shobj_description(oid, 'pg_database') AS comment FROM pg_database WHERE datname = $1`,
    [objects.database],
  );
  if (rows.length === 0) return;
  if (rows[0].comment !== marker(objects.tenant) && !created.has(`database:${objects.database}`)) return;
  await client.query(`DROP DATABASE ${id(objects.database)} WITH (FORCE)`);
}

/** Drops a role of the tenant that owns nothing any more (its database is gone). */
export async function dropRole(
  client: pg.Client,
  objects: TenantObjects,
  name: string,
  created: ReadonlySet<CreatedObject>,
): Promise<void> {
  if (!created.has(`role:${name}`) && !(await isTenantRole(client, objects, name))) return;
  await client.query(`DROP ROLE IF EXISTS ${id(name)}`);
}
