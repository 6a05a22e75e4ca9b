// Faults under load (docs/architecture.md, "Drain and shutdown"): 50 sessions run short
// transactions through two gateway processes that share a Redis and a control plane process,
// while Redis is killed, the control plane is stopped (SIGSTOP) and killed, a PostgreSQL backend
// process is killed (PostgreSQL then resets every session) and one gateway is killed. Sessions a
// fault does not touch keep committing; those it touches fail with an error, never hang, and
// reconnect; every transaction a client saw committed is in the table at the end. Recovery times
// are printed, not asserted.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import pg from 'pg';
import { createTestPki, getFreePort, startRedis, type TestPki } from '@tenantgate/testing';
import { ROOT } from '../startup/run.ts';
import { PASSWORD, startBackend } from '../gateway/harness.ts';

const SESSIONS = 50;
const ADMIN = 'admin-token-for-faults';
const GATEWAY = 'gateway-token-for-faults';

interface Service {
  readonly child: ChildProcess;
  readonly port: number;
  readonly lines: Record<string, unknown>[];
}

const children: ChildProcess[] = [];
after(() => {
  for (const child of children) if (child.exitCode === null) child.kill('SIGKILL');
});

/** Spawns one of the apps and waits for the log line that says it serves. */
async function spawnApp(main: string, env: Record<string, string>, ready: string): Promise<Service> {
  const port = Number(env.GATEWAY_LISTEN?.split(':')[1] ?? env.CONTROL_PLANE_LISTEN?.split(':')[1]);
  const child = spawn(process.execPath, ['--conditions=@tenantgate/source', join(ROOT, main)], {
    env: { PATH: process.env.PATH ?? '', LOG_LEVEL: 'info', ...env },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  children.push(child);
  const lines: Record<string, unknown>[] = [];
  const serving = new Promise<void>((resolve, reject) => {
    child.once('exit', (code) => reject(new Error(`${main} exited with ${code}`)));
    void (async () => {
      for await (const line of createInterface({ input: child.stdout! })) {
        const parsed = JSON.parse(line) as Record<string, unknown>;
        lines.push(parsed);
        if (parsed.msg === ready) resolve();
      }
    })();
  });
  await serving;
  return { child, port, lines };
}

function exited(child: ChildProcess): Promise<void> {
  return child.exitCode !== null ? Promise.resolve() : new Promise((resolve) => child.once('exit', () => resolve()));
}

/** A node-postgres client for tenant acme through the gateway on `port`, with timeouts so nothing hangs. */
function fleetClient(port: number, pki: TestPki): pg.Client {
  return new pg.Client({
    host: '127.0.0.1',
    port,
    user: 'app',
    password: PASSWORD,
    database: 'app',
    ssl: { ca: pki.ca.certPem, servername: 'acme.db.example.test' },
    connectionTimeoutMillis: 10_000,
    query_timeout: 10_000,
  });
}

/** One session's loop: insert, commit, count what committed; on an error, note it and reconnect. */
class Worker {
  readonly committed: number[] = [];
  readonly errors: { at: number; message: string }[] = [];
  #running = true;
  #done: Promise<void>;

  readonly id: number;
  readonly #ports: () => number[];
  readonly #pki: TestPki;

  constructor(id: number, ports: () => number[], pki: TestPki) {
    this.id = id;
    this.#ports = ports;
    this.#pki = pki;
    this.#done = this.#loop();
  }

  get lastCommitAt(): number {
    return this.#lastCommitAt;
  }
  #lastCommitAt = 0;

  async stop(): Promise<void> {
    this.#running = false;
    await this.#done;
  }

  async #loop(): Promise<void> {
    let n = 0;
    let attempt = 0;
    while (this.#running) {
      const candidates = this.#ports();
      const port = candidates[(this.id + attempt) % candidates.length]!;
      const client = fleetClient(port, this.#pki);
      client.on('error', () => {});
      try {
        await client.connect();
        while (this.#running) {
          n++;
          await client.query('insert into ledger (worker, n) values ($1, $2)', [this.id, n]);
          this.committed.push(n);
          this.#lastCommitAt = performance.now();
          await new Promise((resolve) => setTimeout(resolve, 20));
        }
      } catch (error) {
        this.errors.push({ at: performance.now(), message: (error as Error).message });
        attempt++;
        await new Promise((resolve) => setTimeout(resolve, 200));
      } finally {
        await client.end().catch(() => {});
      }
    }
  }
}

test(`${SESSIONS} sessions through two gateways keep their commits through Redis, control plane, backend and gateway faults`, async (t) => {
  const pki = await createTestPki();
  const dir = await mkdtemp(join(tmpdir(), 'tg-faults-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  // A commit a client saw must survive a crash of PostgreSQL's processes: synchronous_commit on
  // (the fixtures turn it off for speed; fsync may stay off, the operating system does not crash).
  const backend = await startBackend(t, pki, {
    hba: ['hostssl all all 127.0.0.1/32 cert'],
    roles: [{ name: 'app' }],
    databases: [{ name: 'app', owner: 'app' }],
    settings: { synchronous_commit: 'on' },
  });
  await backend.sql(
    'create table ledger (worker int not null, n int not null, primary key (worker, n)); grant insert, select on ledger to app',
    [],
    {
      database: 'app',
    },
  );
  const redis = await startRedis();
  t.after(() => redis.stop());

  const controlPlaneEnv = {
    CONTROL_PLANE_LISTEN: `127.0.0.1:${await getFreePort()}`,
    CONTROL_PLANE_DATA_DIR: join(dir, 'control-plane'),
    CONTROL_PLANE_ADMIN_TOKENS: ADMIN,
    CONTROL_PLANE_GATEWAY_TOKENS: GATEWAY,
    CONTROL_PLANE_ALLOW_LOCAL_BACKENDS: 'true',
    REDIS_URL: redis.url,
  };
  let controlPlane = await spawnApp('apps/control-plane/src/main.ts', controlPlaneEnv, 'control plane ready');
  const controlPlaneUrl = `http://127.0.0.1:${controlPlane.port}`;
  const created = await fetch(`${controlPlaneUrl}/v1/tenants`, {
    method: 'POST',
    headers: { authorization: `Bearer ${ADMIN}`, 'content-type': 'application/json' },
    body: JSON.stringify({
      id: 'acme',
      backend: { host: '127.0.0.1', port: backend.port, database: 'app' },
      roles: [{ name: 'app', password: PASSWORD }],
      limits: { maxConnections: 1000, connectsPerSecond: 10_000 },
    }),
  });
  assert.equal(created.status, 201);

  const client = await pki.client('app');
  const gatewayEnv = async () => ({
    GATEWAY_LISTEN: `127.0.0.1:${await getFreePort()}`,
    GATEWAY_ADMIN_LISTEN: 'off',
    GATEWAY_TLS_CERT: pki.edge.chainPem,
    GATEWAY_TLS_KEY: pki.edge.keyPem,
    GATEWAY_SNI_SUFFIXES: '.db.example.test',
    GATEWAY_CONTROL_PLANE_URL: controlPlaneUrl,
    GATEWAY_CONTROL_PLANE_TOKEN: GATEWAY,
    REDIS_URL: redis.url,
    GATEWAY_BACKEND_CA: pki.ca.certPem,
    GATEWAY_BACKEND_CLIENT_CERT: client.chainPem,
    GATEWAY_BACKEND_CLIENT_KEY: client.keyPem,
    GATEWAY_DRAIN_SECONDS: '1',
  });
  const gateways = [
    await spawnApp('apps/gateway/src/main.ts', await gatewayEnv(), 'gateway listening'),
    await spawnApp('apps/gateway/src/main.ts', await gatewayEnv(), 'gateway listening'),
  ];
  const alive = new Set(gateways);
  const ports = () => [...alive].map((g) => g.port);
  const workers = Array.from({ length: SESSIONS }, (_, id) => new Worker(id, ports, pki));

  const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
  const errorsSince = (at: number) => workers.reduce((sum, w) => sum + w.errors.filter((e) => e.at >= at).length, 0);
  const commitsSince = async (at: number, what: string) => {
    const deadline = performance.now() + 30_000;
    while (workers.some((w) => w.lastCommitAt < at)) {
      if (performance.now() > deadline)
        assert.fail(`after ${what}, ${workers.filter((w) => w.lastCommitAt < at).length} sessions never committed again`);
      await sleep(50);
    }
    return performance.now() - at;
  };
  const report: string[] = [];
  /** A new session through each live gateway: how long its login took, in ms. */
  const freshLogins = async (): Promise<string> => {
    const times: number[] = [];
    for (const port of ports()) {
      const started = performance.now();
      const fresh = fleetClient(port, pki);
      await fresh.connect();
      await fresh.query('select 1');
      await fresh.end();
      times.push(Math.round(performance.now() - started));
    }
    return times.map((ms) => `${ms} ms`).join(' and ');
  };
  await commitsSince(performance.now(), 'the start');

  // Redis killed: the gateways resolve from memory and the control plane; sessions do not notice.
  let at = performance.now();
  await redis.kill();
  await sleep(2_000);
  await commitsSince(performance.now(), 'killing Redis');
  report.push(`Redis killed: ${errorsSince(at)} session errors; new logins ${await freshLogins()}`);
  assert.equal(errorsSince(at), 0, 'no session noticed Redis go');
  await redis.restart();

  // The control plane stopped (SIGSTOP), then killed: open sessions do not depend on it.
  at = performance.now();
  controlPlane.child.kill('SIGSTOP');
  // Past the memory TTL (5 s), so a new login needs the control plane, which does not answer.
  await sleep(6_000);
  await commitsSince(performance.now(), 'stopping the control plane');
  report.push(`control plane stopped (SIGSTOP) 6 s: new logins ${await freshLogins()}`);
  controlPlane.child.kill('SIGCONT');
  controlPlane.child.kill('SIGKILL');
  await exited(controlPlane.child);
  await sleep(1_000);
  await commitsSince(performance.now(), 'killing the control plane');
  report.push(`control plane stopped, then killed: ${errorsSince(at)} session errors; new logins ${await freshLogins()}`);
  assert.equal(errorsSince(at), 0, 'no session noticed the control plane go');
  controlPlane = await spawnApp('apps/control-plane/src/main.ts', controlPlaneEnv, 'control plane ready');

  // One PostgreSQL backend process killed: PostgreSQL resets every session, which reconnect.
  at = performance.now();
  const [victim] = await backend.sql<{ pid: number }>("select pid from pg_stat_activity where usename = 'app' limit 1");
  assert.ok(victim);
  process.kill(victim.pid, 'SIGKILL');
  const backendRecovery = await commitsSince(performance.now(), 'killing a backend process');
  report.push(
    `a PostgreSQL backend killed: ${errorsSince(at)} session errors, all sessions committing again after ${Math.round(backendRecovery)} ms`,
  );

  // One gateway killed: its sessions fail and reconnect through the other.
  at = performance.now();
  const [killed] = gateways;
  alive.delete(killed!);
  killed!.child.kill('SIGKILL');
  await exited(killed!.child);
  const gatewayRecovery = await commitsSince(performance.now(), 'killing a gateway');
  report.push(`a gateway killed: ${errorsSince(at)} session errors, all sessions committing again after ${Math.round(gatewayRecovery)} ms`);

  await Promise.all(workers.map((w) => w.stop()));
  // Every commit a client saw is in the table.
  const rows = await backend.sql<{ worker: number; n: number }>('select worker, n from ledger', [], { database: 'app' });
  const stored = new Set(rows.map((r) => `${r.worker}:${r.n}`));
  const lost = workers.flatMap((w) => w.committed.filter((n) => !stored.has(`${w.id}:${n}`)));
  const total = workers.reduce((sum, w) => sum + w.committed.length, 0);
  report.push(`${total} commits seen by clients, ${lost.length} missing from the table`);
  assert.equal(lost.length, 0);
  const hung = workers.flatMap((w) => w.errors).filter((e) => /timeout/i.test(e.message));
  assert.deepEqual(hung, [], 'no query or connect waited out its timeout');
  for (const line of report) t.diagnostic(line);
});
