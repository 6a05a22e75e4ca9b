// Scale to zero: a sleeping tenant is woken by the first client that logs in at the edge, through
// the platform's compute webhook (a receiver started here, which starts the stopped PostgreSQL
// with pg_ctl and sets the tenant active) or the control plane's local pg_ctl driver; clients
// are held meanwhile, one wake serves them all, and an idle tenant is put to sleep again.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { once } from 'node:events';
import { readFile, stat, writeFile } from 'node:fs/promises';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { COMPUTE_SIGNATURE_HEADER, verifyComputeSignature } from '@tenantgate/control-plane';
import { createMetrics, type Gateway, type GatewayMetrics } from '@tenantgate/gateway';
import {
  createTempDir,
  createTestPki,
  getFreePort,
  removeTempDir,
  runPsql,
  startPostgres,
  startRedis,
  type PostgresServer,
  type RedisServer,
  type TestPki,
} from '@tenantgate/testing';
import { call, createStoreHome, eventually, GATEWAY_TOKEN, startApp, type RunningApp, type StoreHome } from '../control-plane/harness.ts';
import { CONTROL_PLANE_MAIN, gatewayEnvironment, startAppProcess, startGatewayProcess } from './app-processes.ts';
import { connectError, controlPlaneDirectory, createTestGateway, PASSWORD, pgClient, psqlSettings, roleSecret } from './harness.ts';

const SECRET = 'compute-webhook-secret-0123456789';
const run = promisify(execFile);

/** pg_ctl on the server's data directory, as its owner (PostgreSQL refuses root). */
async function pgCtl(server: PostgresServer, ...args: string[]): Promise<void> {
  const dir = server.dataDir as string;
  const version = (await readFile(join(dir, 'PG_VERSION'), 'utf8')).trim();
  const { uid, gid } = await stat(dir);
  const owner = process.getuid?.() === 0 ? { uid, gid } : {};
  await run(`/usr/lib/postgresql/${version}/bin/pg_ctl`, [...args, '-D', dir], owner).catch(async () =>
    run('pg_ctl', [...args, '-D', dir], owner),
  );
}

async function isRunning(server: PostgresServer): Promise<boolean> {
  return pgCtl(server, 'status').then(
    () => true,
    () => false,
  );
}

const startServer = (server: PostgresServer) =>
  pgCtl(server, 'restart', '-w', '-m', 'fast', '-l', join(server.dataDir as string, 'restarted.log'));
const stopServer = (server: PostgresServer) => pgCtl(server, 'stop', '-w', '-m', 'fast');

/** A backend that pg_ctl may stop and start; stopped for good after the tests. */
async function startScramBackend(pki: TestPki): Promise<PostgresServer> {
  return startPostgres({
    serverCert: pki.backend.chainPem,
    serverKey: pki.backend.keyPem,
    clientCa: pki.ca.certPem,
    hba: ['hostssl all postgres 127.0.0.1/32 cert', 'hostssl all all 127.0.0.1/32 scram-sha-256'],
    roles: [{ name: 'app', password: PASSWORD }],
    databases: [{ name: 'app', owner: 'app' }],
  });
}

interface Received {
  readonly tenant: string;
  readonly action: string;
  readonly signed: boolean;
  /** Whether the same header verifies under another secret, or over an altered body. */
  readonly forgeable: boolean;
}

/** What the platform's receiver does for a tenant's wake. */
type Behaviour = 'start' | 'ignore' | 'fail-twice';

let pki: TestPki;
let backend: PostgresServer;
let redis: RedisServer;
let home: StoreHome;
let controlPlane: RunningApp;
let receiver: Server;
const received: Received[] = [];
const behaviours = new Map<string, Behaviour>();
const failures = new Map<string, number>();
let gateway: Gateway;
let metrics: GatewayMetrics;
let impatient: Gateway;
let caFile: string;
let dir: string;

async function body(request: IncomingMessage): Promise<string> {
  let text = '';
  for await (const chunk of request) text += String(chunk);
  return text;
}

/** The platform: checks the signature, starts the compute (pg_ctl), then says the tenant is active. */
async function receive(request: IncomingMessage): Promise<number> {
  const text = await body(request);
  const { tenant, action } = JSON.parse(text) as { tenant: string; action: string };
  const header = String(request.headers[COMPUTE_SIGNATURE_HEADER] ?? '');
  const signed = verifyComputeSignature(SECRET, header, text);
  const forgeable =
    verifyComputeSignature('another-secret-0123456789', header, text) ||
    verifyComputeSignature(SECRET, header, text.replace(tenant, 'other'));
  received.push({ tenant, action, signed, forgeable });
  const behaviour = behaviours.get(tenant) ?? 'start';
  if (behaviour === 'fail-twice' && (failures.get(tenant) ?? 0) < 2) {
    failures.set(tenant, (failures.get(tenant) ?? 0) + 1);
    return 500;
  }
  if (behaviour === 'ignore' || action !== 'wake') return 202;
  // Accepted at once; the compute comes up after, as a platform's would.
  setImmediate(() => {
    void (async () => {
      if (!(await isRunning(backend))) await startServer(backend);
      await call(controlPlane.url, 'PATCH', `/v1/tenants/${tenant}`, { json: { status: 'active' } });
    })();
  });
  return 202;
}

async function tenantOnBackend(id: string, extra: Record<string, unknown> = {}): Promise<void> {
  const scramSecret = await roleSecret(backend, 'app');
  const created = await call(controlPlane.url, 'POST', '/v1/tenants', {
    json: {
      id,
      status: 'sleeping',
      backend: { host: '127.0.0.1', port: backend.port, database: 'app' },
      roles: [{ name: 'app', scramSecret }],
      ...extra,
    },
  });
  assert.equal(created.status, 201, JSON.stringify(created.body));
}

function wakesOf(tenant: string): Received[] {
  return received.filter((r) => r.tenant === tenant && r.action === 'wake');
}

describe('sleeping tenants woken through the compute webhook', () => {
  before(async () => {
    pki = await createTestPki();
    [backend, redis] = await Promise.all([startScramBackend(pki), startRedis()]);
    await backend.sql("CREATE TABLE kept AS SELECT 'before the sleep' AS note; GRANT SELECT ON kept TO app", [], { database: 'app' });
    receiver = createServer((request, response) => {
      void receive(request).then((status) => response.writeHead(status).end());
    });
    receiver.listen(0, '127.0.0.1');
    await once(receiver, 'listening');
    const url = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}/compute`;
    home = await createStoreHome('pglite');
    controlPlane = await startApp(await home.open(), {
      redisUrl: redis.url,
      migrate: true,
      allowLocalBackends: true,
      compute: { driver: 'webhook', url, secret: SECRET },
      provisioningPollMs: 200,
    });
    metrics = createMetrics();
    gateway = await createTestGateway(pki, await controlPlaneDirectory(controlPlane.url, GATEWAY_TOKEN, redis.url), {
      metrics,
      settings: { wakeTimeoutMs: 20_000 },
    });
    impatient = await createTestGateway(pki, await controlPlaneDirectory(controlPlane.url, GATEWAY_TOKEN, redis.url), {
      settings: { wakeTimeoutMs: 1500 },
    });
    dir = createTempDir('sleep-wake');
    caFile = join(dir, 'ca.crt');
    await writeFile(caFile, pki.ca.certPem);
  });

  after(async () => {
    await Promise.all([gateway?.close(), impatient?.close()]);
    await controlPlane?.close();
    await home?.remove();
    receiver?.close();
    await Promise.all([backend?.stop(), redis?.stop()]);
    if (dir !== undefined) removeTempDir(dir);
  });

  test('three clients of a stopped, sleeping tenant all get in once the platform started it, after one wake; the rows are there', async () => {
    await tenantOnBackend('dozy');
    await stopServer(backend);
    const runs = await Promise.all(
      [1, 2, 3].map(() =>
        runPsql(psqlSettings(gateway, caFile, 'dozy'), { sql: 'select note from kept', password: PASSWORD, timeoutMs: 30_000 }),
      ),
    );
    for (const result of runs) {
      assert.equal(result.code, 0, result.stderr);
      assert.equal(result.stdout.trim(), 'before the sleep');
    }
    assert.deepEqual(wakesOf('dozy'), [{ tenant: 'dozy', action: 'wake', signed: true, forgeable: false }]);
    const tenant = await call(controlPlane.url, 'GET', '/v1/tenants/dozy');
    assert.equal(tenant.body.status, 'active');
    assert.equal(tenant.body.compute, undefined);
    const text = await metrics.registry.metrics();
    assert.match(text, /^tenantgate_phase_duration_seconds_count\{phase="wake"\} 3$/m);
  });

  test('a wake the platform never completes: 57P03 after the timeout, visible in GET; a wrong password wakes nothing', async () => {
    behaviours.set('stuck', 'ignore');
    await tenantOnBackend('stuck');
    const wrong = await connectError(pgClient(impatient, pki, { password: 'not-the-password', database: 'app', ...sni('stuck') }));
    assert.equal(wrong.code, '28P01');
    assert.deepEqual(wakesOf('stuck'), []);

    const held = await connectError(pgClient(impatient, pki, sni('stuck')));
    assert.equal(held.code, '57P03', held.message);
    assert.equal(held.message, 'the database system is starting up');
    assert.match(held.hint ?? '', /Retry in a few seconds/);
    assert.equal(wakesOf('stuck').length, 1);
    const tenant = await call(controlPlane.url, 'GET', '/v1/tenants/stuck');
    assert.equal(tenant.body.status, 'sleeping');
    assert.equal(tenant.body.compute.state, 'waking');
  });

  test('a tenant suspended while its client waits for the wake: the client gets the suspension, not a backend', async () => {
    behaviours.set('revoked', 'ignore');
    await tenantOnBackend('revoked');
    const waiting = connectError(pgClient(gateway, pki, sni('revoked')));
    await eventually('the wake to be asked for', () => (wakesOf('revoked').length > 0 ? true : undefined));
    const patched = await call(controlPlane.url, 'PATCH', '/v1/tenants/revoked', { json: { status: 'suspended' } });
    assert.equal(patched.status, 200);
    const refused = await waiting;
    assert.equal(refused.code, '08004', refused.message);
    assert.match(refused.message, /suspended/);
    assert.equal((await call(controlPlane.url, 'GET', '/v1/tenants/revoked')).body.compute, undefined);
  });

  test('a webhook that fails twice is retried with backoff, every request signed', async () => {
    behaviours.set('flaky', 'fail-twice');
    await tenantOnBackend('flaky');
    const client = pgClient(gateway, pki, sni('flaky'));
    await client.connect();
    assert.deepEqual((await client.query('select note from kept')).rows, [{ note: 'before the sleep' }]);
    await client.end();
    const wakes = wakesOf('flaky');
    assert.equal(wakes.length, 3);
    // Each verifies under the secret, and neither under another secret nor over an altered body.
    assert.ok(wakes.every((w) => w.signed && !w.forgeable));
  });
});

/** A client option set for a tenant's host name through the gateway. */
function sni(tenant: string): { servername: string } {
  return { servername: `${tenant}.db.example.test` };
}

test('the local driver: an idle tenant is suspended (its cluster stopped) and the next client wakes it', async (t) => {
  pki ??= await createTestPki();
  const [server, fleetRedis] = await Promise.all([startScramBackend(pki), startRedis()]);
  t.after(() => Promise.all([server.stop(), fleetRedis.stop()]));
  const secrets = createTempDir('sleep-local');
  t.after(() => removeTempDir(secrets));
  const admin = await pki.client('postgres');
  await writeFile(join(secrets, 'admin.crt'), admin.chainPem);
  await writeFile(join(secrets, 'admin.key'), admin.keyPem);
  const port = await getFreePort();
  const url = `http://127.0.0.1:${port}`;
  const controlPlaneProcess = await startAppProcess(
    t,
    CONTROL_PLANE_MAIN,
    {
      PATH: process.env.PATH ?? '',
      CONTROL_PLANE_LISTEN: `127.0.0.1:${port}`,
      CONTROL_PLANE_DATA_DIR: join(secrets, 'store'),
      CONTROL_PLANE_ADMIN_TOKENS: 'admin-token-0123456789abcdef',
      CONTROL_PLANE_GATEWAY_TOKENS: GATEWAY_TOKEN,
      CONTROL_PLANE_SECRETS_DIR: secrets,
      CONTROL_PLANE_ALLOW_LOCAL_BACKENDS: 'true',
      CONTROL_PLANE_COMPUTE_DRIVER: 'local',
      REDIS_URL: fleetRedis.url,
      LOG_LEVEL: 'info',
    },
    'control plane ready',
  );
  t.after(() => controlPlaneProcess.stop());
  const cluster = {
    id: 'local',
    host: '127.0.0.1',
    port: server.port,
    caCertificate: pki.ca.certPem,
    adminUser: 'postgres',
    adminCredential: 'admin',
    dataDirectory: server.dataDir,
  };
  assert.equal((await call(url, 'POST', '/v1/clusters', { json: cluster })).status, 201);
  const created = await call(url, 'POST', '/v1/tenants', {
    json: { id: 'napper', backend: { cluster: 'local' }, roles: [{ name: 'app', password: 'napper-pw' }], idleSuspendSeconds: 2 },
  });
  assert.equal(created.status, 201, JSON.stringify(created.body));
  const gatewayProcess = await startGatewayProcess(
    t,
    await gatewayEnvironment(pki, {
      GATEWAY_LISTEN: `127.0.0.1:${await getFreePort()}`,
      GATEWAY_CONTROL_PLANE_URL: url,
      GATEWAY_CONTROL_PLANE_TOKEN: GATEWAY_TOKEN,
      REDIS_URL: fleetRedis.url,
    }),
  );
  const settings = { ...psqlSettings(gatewayProcess, join(secrets, 'ca.crt'), 'napper'), dbname: 'napper' };
  await writeFile(join(secrets, 'ca.crt'), pki.ca.certPem);
  const query = "select current_user || ' ' || current_database()";

  // A session keeps it awake; two seconds after it ends, the tenant sleeps and its cluster stops.
  const first = await runPsql(settings, { sql: `${query}; select pg_sleep(3)`, password: 'napper-pw', timeoutMs: 20_000 });
  assert.equal(first.code, 0, first.stderr);
  assert.equal(first.stdout.trim().split('\n')[0], 'napper_app napper');
  const slept = await eventually(
    'the idle tenant to sleep',
    async () => {
      const { body } = await call(url, 'GET', '/v1/tenants/napper');
      return body.status === 'sleeping' && body.compute === undefined ? body : undefined;
    },
    20_000,
  );
  assert.equal(slept.status, 'sleeping');
  assert.equal(await isRunning(server), false);

  // The next client wakes it: pg_ctl starts the cluster, and the client gets in.
  const second = await runPsql(settings, { sql: query, password: 'napper-pw', timeoutMs: 40_000 });
  assert.equal(second.code, 0, second.stderr);
  assert.equal(second.stdout.trim(), 'napper_app napper');
  assert.equal(await isRunning(server), true);
  assert.equal((await call(url, 'GET', '/v1/tenants/napper')).body.status, 'active');
});
