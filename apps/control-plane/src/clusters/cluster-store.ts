// Registered clusters in the control plane's database: the record as given (never a key or a
// password: those stay in the secrets directory) and what the last check found.
import type { Database } from '../db/database.ts';
import { ClusterExistsError, ClusterInUseError, ClusterNotFoundError } from '../errors.ts';
import type { Cluster, ClusterCheck } from './cluster.ts';

export interface StoredCluster {
  cluster: Cluster;
  /** The last successful check (registration or a read). */
  check: ClusterCheck;
  createdAt: string;
}

interface ClusterRow {
  id: string;
  record: Omit<Cluster, 'id'> & { check: ClusterCheck };
  created_at: Date | string;
}

export class ClusterStore {
  readonly #db: Database;

  constructor(db: Database) {
    this.#db = db;
  }

  /** @throws ClusterExistsError */
  async create(cluster: Cluster, check: ClusterCheck): Promise<StoredCluster> {
    const { id, ...record } = cluster;
    const rows = await this.#db.query<ClusterRow>(
      `INSERT INTO clusters (id, record) VALUES ($1, $2) ON CONFLICT (id) DO NOTHING RETURNING id, record, created_at`,
      [id, JSON.stringify({ ...record, check })],
    );
    if (rows.length === 0) throw new ClusterExistsError(id);
    return storedOf(rows[0]);
  }

  async get(id: string): Promise<StoredCluster | undefined> {
    const rows = await this.#db.query<ClusterRow>('SELECT id, record, created_at FROM clusters WHERE id = $1', [id]);
    return rows.length === 0 ? undefined : storedOf(rows[0]);
  }

  /** @throws ClusterNotFoundError */
  async require(id: string): Promise<StoredCluster> {
    const stored = await this.get(id);
    if (stored === undefined) throw new ClusterNotFoundError(id);
    return stored;
  }

  async list(options: { limit: number; after?: string }): Promise<{ items: StoredCluster[]; more: boolean }> {
    const rows =
      options.after === undefined
        ? await this.#db.query<ClusterRow>('SELECT id, record, created_at FROM clusters ORDER BY id LIMIT $1', [options.limit + 1])
        : await this.#db.query<ClusterRow>('SELECT id, record, created_at FROM clusters WHERE id > $1::text ORDER BY id LIMIT $2', [
            options.after,
            options.limit + 1,
          ]);
    return { items: rows.slice(0, options.limit).map(storedOf), more: rows.length > options.limit };
  }

  /** The cluster registered with this admin credential, if any. */
  async usingCredential(name: string): Promise<string | undefined> {
    const rows = await this.#db.query<{ id: string }>(`SELECT id FROM clusters WHERE record->>'adminCredential' = $1 LIMIT 1`, [name]);
    return rows[0]?.id;
  }

  async recordCheck(id: string, check: ClusterCheck): Promise<void> {
    await this.#db.query(`UPDATE clusters SET record = jsonb_set(record, '{check}', $2::jsonb) WHERE id = $1`, [id, JSON.stringify(check)]);
  }

  /** @throws ClusterNotFoundError, ClusterInUseError (tenants on it, or work left on it) */
  async delete(id: string): Promise<void> {
    await this.#db.transaction(async (tx) => {
      const rows = await tx.query('SELECT 1 FROM clusters WHERE id = $1 FOR UPDATE', [id]);
      if (rows.length === 0) throw new ClusterNotFoundError(id);
      const [{ tenants, jobs }] = await tx.query<{ tenants: number; jobs: number }>(
        `SELECT (SELECT count(*)::int FROM tenants WHERE provisioning->>'cluster' = $1) AS tenants,
                (SELECT count(*)::int FROM provisioning_jobs WHERE cluster_id = $1) AS jobs`,
        [id],
      );
      if (Number(tenants) > 0) throw new ClusterInUseError(id, `${tenants} tenant(s) live on it; delete them first`);
      if (Number(jobs) > 0) throw new ClusterInUseError(id, `${jobs} provisioning job(s) are not done on it`);
      await tx.query('DELETE FROM clusters WHERE id = $1', [id]);
    });
  }
}

function storedOf(row: ClusterRow): StoredCluster {
  const { check, ...record } = row.record;
  const createdAt = (row.created_at instanceof Date ? row.created_at : new Date(row.created_at)).toISOString();
  return { cluster: { id: row.id, ...record }, check, createdAt };
}
