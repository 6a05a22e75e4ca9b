// The Database over a pg.Pool: the store of a fleet of control planes (DATABASE_URL).
import pg from 'pg';
import { DatabaseKind, type Database } from './database.ts';

export interface PostgresDatabaseOptions {
  readonly connectionString: string;
  /** Pool size; default 10. */
  readonly max?: number;
  /** An idle pooled connection failed (the server restarted, the network dropped it). */
  readonly onError?: (error: Error) => void;
}

export function createPostgresDatabase(options: PostgresDatabaseOptions): Database {
  const pool = new pg.Pool({
    connectionString: options.connectionString,
    max: options.max ?? 10,
    connectionTimeoutMillis: 5000,
    // Never let a statement hang a request forever.
    statement_timeout: 30_000,
  });
  // Without a listener an idle client's error would crash the process; the pool replaces it.
  pool.on('error', (error) => options.onError?.(error));
  let closed: Promise<void> | undefined;
  return {
    kind: DatabaseKind.Postgres,
    query: (text, params) => runQuery(pool, text, params),
    async transaction(work) {
      const client = await pool.connect();
      try {
        await client.query('BEGIN');
        const result = await work({ query: (text, params) => runQuery(client, text, params) });
        await client.query('COMMIT');
        client.release();
        return result;
      } catch (error) {
        await rollback(client, error);
        throw error;
      }
    },
    close() {
      closed ??= pool.end();
      return closed;
    },
  };
}

async function runQuery<Row extends object>(
  target: pg.Pool | pg.PoolClient,
  text: string,
  params: readonly unknown[] | undefined,
): Promise<Row[]> {
  const result = await target.query<Row>(text, params === undefined ? undefined : [...params]);
  return result.rows;
}

/** Rolls back and returns the client; a client whose rollback failed is destroyed, not reused. */
async function rollback(client: pg.PoolClient, cause: unknown): Promise<void> {
  try {
    await client.query('ROLLBACK');
    client.release();
  } catch {
    client.release(cause instanceof Error ? cause : new Error('transaction failed'));
  }
}
