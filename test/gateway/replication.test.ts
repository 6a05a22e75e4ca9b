// Replication connections through the gateway (docs/architecture.md, step 7): pg_recvlogical and
// postgres.js `subscribe` stream logical changes, pg_basebackup copies a whole backend, a tenant
// that allows none is refused once with 0A000 and its hint, and drain ends a replication stream
// at its deadline (not before) with 57P01.
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import postgres from 'postgres';
import {
  conninfo,
  createTestPki,
  requirePostgresClient,
  runPsql,
  startPostgres,
  type PostgresServer,
  type TestPki,
} from '@tenantgate/testing';
import type { Gateway } from '@tenantgate/gateway';
import { PASSWORD, psqlSettings, scratchDir, startBackend, startGateway, tenantHost, type TenantEntry } from './harness.ts';

/** Only to turn a hang into a failure; no test waits this long when it passes. */
const PATIENCE_MS = 20_000;

interface Fixture {
  readonly pki: TestPki;
  readonly backend: PostgresServer;
  readonly gateway: Gateway;
  readonly caFile: string;
  readonly dir: string;
}

/**
 * One backend that can replicate (wal_level logical, pg_hba `replication` lines for the
 * gateway's certificate, role `app` with REPLICATION) and four tenants on it: `acme`
 * (physical, hence logical too), `cdc` (logical only), `plain` (none, the default) and
 * `capped` (logical, one connection at most).
 */
async function replicationFixture(t: TestContext): Promise<Fixture> {
  const pki = await createTestPki();
  const dir = scratchDir(t, 'replication');
  const backend = await startBackend(t, pki, {
    hba: ['hostssl all all 127.0.0.1/32 cert', 'hostssl replication all 127.0.0.1/32 cert'],
    roles: [{ name: 'app' }],
    databases: [{ name: 'app', owner: 'app' }],
    settings: { wal_level: 'logical', max_wal_senders: 10, max_replication_slots: 10 },
  });
  await backend.sql('alter role app replication');
  await backend.sql('create table items (id int primary key, name text); alter table items owner to app', [], { database: 'app' });
  // postgres.js subscribes to the publication `alltables` unless told otherwise.
  await backend.sql('create publication alltables for all tables', [], { database: 'app' });
  const tenant = (id: string, replication: TenantEntry['replication']): TenantEntry => ({
    id,
    backend: { host: '127.0.0.1', port: backend.port, database: 'app' },
    roles: [{ name: 'app', password: PASSWORD }],
    ...(replication === undefined ? {} : { replication }),
  });
  const tenants = [
    tenant('acme', 'physical'),
    tenant('cdc', 'logical'),
    tenant('plain', undefined),
    { ...tenant('capped', 'logical'), limits: { maxConnections: 1, connectsPerSecond: 100 } },
  ];
  const gateway = await startGateway(t, { pki, dir, tenants });
  const caFile = join(dir, 'ca.crt');
  await writeFile(caFile, pki.ca.certPem);
  return { pki, backend, gateway, caFile, dir };
}

/** A PostgreSQL client program (pg_recvlogical, pg_basebackup) with the test's password and no PG* variables. */
function spawnClient(program: string, args: readonly string[], home: string): ChildProcess {
  const inherited = Object.entries(process.env).filter(([name]) => !name.startsWith('PG'));
  const env = { ...Object.fromEntries(inherited), LC_ALL: 'C', PGPASSWORD: PASSWORD, HOME: home };
  return spawn(requirePostgresClient(program), args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
}

interface Exit {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

/** Runs a client program to its end. */
async function runClient(program: string, args: readonly string[], home: string): Promise<Exit> {
  const child = spawnClient(program, args, home);
  const output = collect(child);
  const [code] = (await once(child, 'exit')) as [number | null];
  return { code, ...output() };
}

function collect(child: ChildProcess): () => { stdout: string; stderr: string } {
  let stdout = '';
  let stderr = '';
  child.stdout?.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
  child.stderr?.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  return () => ({ stdout, stderr });
}

/** Resolves once `read()` matches `pattern`; fails with what was read after PATIENCE_MS. */
async function waitFor(read: () => string, pattern: RegExp, what: string): Promise<void> {
  const deadline = Date.now() + PATIENCE_MS;
  while (!pattern.test(read())) {
    if (Date.now() > deadline) assert.fail(`${what}: ${pattern} never appeared in:\n${read()}`);
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

function recvlogicalArgs(fixture: Fixture, tenant: string, ...args: string[]): string[] {
  return ['-d', conninfo(psqlSettings(fixture.gateway, fixture.caFile, tenant)), '--slot', `slot_${tenant}`, ...args];
}

/** pg_recvlogical streaming the tenant's slot to stdout (status every second, no retry after an error). */
async function startStreaming(t: TestContext, fixture: Fixture, tenant: string): Promise<{ child: ChildProcess; stdout: () => string }> {
  await fixture.backend.sql("select pg_create_logical_replication_slot($1, 'test_decoding')", [`slot_${tenant}`], { database: 'app' });
  const child = spawnClient('pg_recvlogical', recvlogicalArgs(fixture, tenant, '--start', '--no-loop', '-s', '1', '-f', '-'), fixture.dir);
  t.after(() => child.kill('SIGKILL'));
  const output = collect(child);
  return { child, stdout: () => output().stdout + output().stderr };
}

test('pg_recvlogical streams the changes of an insert made on the backend, through a tenant that allows logical replication', async (t) => {
  const fixture = await replicationFixture(t);
  const { child, stdout } = await startStreaming(t, fixture, 'cdc');
  // The walsender streams once the slot is active: a row inserted from then on must come through.
  await waitForActiveSlot(fixture.backend, 'slot_cdc');
  await fixture.backend.sql("insert into items values (1, 'first')", [], { database: 'app' });
  await waitFor(stdout, /table public\.items: INSERT: id\[integer\]:1 name\[text\]:'first'/, 'pg_recvlogical');
  child.kill('SIGINT');
  await once(child, 'exit');
});

test("a replication session holds one of the tenant's connections, as any session does", async (t) => {
  const fixture = await replicationFixture(t);
  await startStreaming(t, fixture, 'capped');
  await waitForActiveSlot(fixture.backend, 'slot_capped');
  const refused = await runPsql(psqlSettings(fixture.gateway, fixture.caFile, 'capped'), { password: PASSWORD, home: fixture.dir });
  assert.equal(refused.code, 2);
  assert.match(refused.stderr, /too many connections/);
});

test('postgres.js subscribe receives an insert, an update and a delete through the gateway', async (t) => {
  const fixture = await replicationFixture(t);
  const sql = postgresClient(t, fixture, 'cdc');
  const events: { command: string; row: unknown }[] = [];
  await sql.subscribe('*:items', (row, info) => events.push({ command: info.command, row: row === null ? null : { ...row } }));
  await fixture.backend.sql("insert into items values (7, 'seven')", [], { database: 'app' });
  await fixture.backend.sql("update items set name = 'SEVEN' where id = 7", [], { database: 'app' });
  await fixture.backend.sql('delete from items where id = 7', [], { database: 'app' });
  await waitFor(() => JSON.stringify(events), /"delete"/, 'subscribe');
  assert.deepEqual(
    events.map((e) => e.command),
    ['insert', 'update', 'delete'],
  );
  assert.deepEqual(events[0]?.row, { id: 7, name: 'seven' });
  assert.deepEqual(events[1]?.row, { id: 7, name: 'SEVEN' });
  // Ended before the gateway closes (teardown), or postgres.js reconnects the stream.
  await sql.end({ timeout: 1 });
});

test('a tenant that allows no replication refuses it once with 0A000 and a hint naming the setting', async (t) => {
  const fixture = await replicationFixture(t);
  const refused = await runClient('pg_recvlogical', recvlogicalArgs(fixture, 'plain', '--create-slot', '-P', 'test_decoding'), fixture.dir);
  assert.equal(refused.code, 1);
  assert.match(refused.stderr, /FATAL: {2}logical replication connections are not allowed for this database/);
  assert.match(refused.stderr, /HINT: {2}The tenant's "replication" setting must be "logical" or "physical"/);

  // A logical-only tenant refuses physical replication, naming the value that would allow it.
  const physical = await runClient(
    'pg_basebackup',
    ['-d', conninfo(psqlSettings(fixture.gateway, fixture.caFile, 'cdc')), '-D', join(fixture.dir, 'no-copy')],
    fixture.dir,
  );
  assert.notEqual(physical.code, 0);
  assert.match(physical.stderr, /physical replication connections are not allowed for this database/);
  assert.match(physical.stderr, /must be "physical"/);

  // A driver sees the SQLSTATE; ordinary sessions of the same tenant still work.
  assert.deepEqual([...(await postgresClient(t, fixture, 'plain')`select 1 as one`)], [{ one: 1 }]);
  await assert.rejects(postgresClient(t, fixture, 'plain', { replication: 'database' })`select 1`, { code: '0A000' });
});

test('pg_basebackup copies a backend through a tenant that allows physical replication, and the copy starts as a server', async (t) => {
  const fixture = await replicationFixture(t);
  await fixture.backend.sql("insert into items select g, 'row ' || g from generate_series(1, 1000) g", [], { database: 'app' });
  const copy = join(fixture.dir, 'copy');
  // -X stream: a second replication connection streams the WAL while the first copies the files.
  const backup = await runClient(
    'pg_basebackup',
    ['-d', conninfo(psqlSettings(fixture.gateway, fixture.caFile, 'acme')), '-D', copy, '-X', 'stream', '-c', 'fast', '--no-sync'],
    fixture.dir,
  );
  assert.equal(backup.code, 0, backup.stderr);
  const copied = await startPostgres({ dataFrom: copy, hba: ['host all all 127.0.0.1/32 trust'] });
  t.after(() => copied.stop());
  assert.deepEqual(await copied.sql('select count(*)::int as n, max(name) as last from items', [], { database: 'app' }), [
    { n: 1000, last: 'row 999' },
  ]);
});

test('drain leaves a replication stream open until its deadline, then ends it with 57P01', async (t) => {
  const fixture = await replicationFixture(t);
  const { child, stdout } = await startStreaming(t, fixture, 'cdc');
  await waitForActiveSlot(fixture.backend, 'slot_cdc');
  const exited = once(child, 'exit');
  const draining = fixture.gateway.drain(3000);
  // Well inside the deadline, the stream still carries changes.
  await fixture.backend.sql("insert into items values (2, 'during drain')", [], { database: 'app' });
  await waitFor(stdout, /INSERT: id\[integer\]:2 name\[text\]:'during drain'/, 'pg_recvlogical during drain');
  assert.equal(child.exitCode, null, 'the stream is still open before the deadline');
  await draining;
  await exited;
  assert.match(stdout(), /terminating connection because the gateway is shutting down/);
});

/** A postgres.js client of the tenant (extra startup parameters in `connection`), ended after the test. */
function postgresClient(t: TestContext, fixture: Fixture, tenant: string, connection: Record<string, string> = {}): postgres.Sql {
  const sql = postgres({
    host: '127.0.0.1',
    port: fixture.gateway.address.port,
    user: 'app',
    password: PASSWORD,
    database: 'app',
    ssl: { servername: tenantHost(tenant), ca: fixture.pki.ca.certPem },
    max: 1,
    onnotice: () => {},
    connection,
  });
  t.after(() => sql.end({ timeout: 1 }));
  return sql;
}

async function waitForActiveSlot(backend: PostgresServer, slot: string): Promise<void> {
  const deadline = Date.now() + PATIENCE_MS;
  for (;;) {
    const rows = await backend.sql<{ active: boolean }>('select active from pg_replication_slots where slot_name = $1', [slot]);
    if (rows[0]?.active === true) return;
    if (Date.now() > deadline) assert.fail(`slot ${slot} never became active`);
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}
