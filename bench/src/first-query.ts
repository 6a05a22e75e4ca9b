// Time to first query: from the start of a new connection (TCP, TLS, SCRAM, startup) to the
// result of its first query, one connection after another, measured by a client in this
// process (node-postgres, which computes SCRAM's client proof as libpq does).
import { isIP } from 'node:net';
import pg from 'pg';

/** Milliseconds per connection, in the order they were made, over about `seconds`. */
export async function firstQueryTimes(env: NodeJS.ProcessEnv, seconds: number): Promise<number[]> {
  const config: pg.ClientConfig = {
    host: env.PGHOSTADDR ?? env.PGHOST,
    port: Number(env.PGPORT),
    user: env.PGUSER,
    password: env.PGPASSWORD,
    database: env.PGDATABASE,
    // The server name the path needs (the gateway takes the tenant from it), and no verification:
    // libpq's sslmode=require, as pgbench and psql have on every path.
    ssl: {
      rejectUnauthorized: false,
      ...(env.PGHOST !== undefined && isIP(env.PGHOST) === 0 ? { servername: env.PGHOST } : {}),
    },
    connectionTimeoutMillis: 10_000,
  };
  const times: number[] = [];
  const end = performance.now() + seconds * 1000;
  while (performance.now() < end) {
    const start = performance.now();
    const client = new pg.Client(config);
    await client.connect();
    await client.query('select 1');
    times.push(performance.now() - start);
    await client.end();
  }
  return times;
}
