// The gateway resolving tenants through the real control plane (PGlite store, over HTTP) with a
// real Redis as the shared cache: provisioning takes effect on the next connection without
// waiting for a TTL, concurrent misses make one control-plane request, and the gateway keeps
// serving while Redis restarts and while the control plane is down.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect as tlsConnect } from 'node:tls';
import pg from 'pg';
import { buildApp, createRedisClient, type Database } from '@tenantgate/control-plane';
import { createStoreHome, type StoreHome } from '../control-plane/harness.ts';
import { createTestGateway } from './harness.ts';
import { ControlPlaneDirectory, createLogger, createMetrics, type Gateway } from '@tenantgate/gateway';
import { serializeStartupMessage } from '@tenantgate/wire';
import {
  createTestPki,
  runPsql,
  startPostgres,
  startRedis,
  type PostgresServer,
  type RedisServer,
  type TestPki,
} from '@tenantgate/testing';

const ADMIN = 'admin-token-for-tests';
const GATEWAY = 'gateway-token-for-tests';
const PASSWORD = 'app-password';

let pki: TestPki;
let backendA: PostgresServer;
let backendB: PostgresServer;
let redis: RedisServer;
let database: Database;
let store: StoreHome;
let controlPlane: Awaited<ReturnType<typeof startControlPlane>>;
let controlPlanePort = 0;
let gateway: Gateway;
let dir: string;

async function startControlPlane() {
  const publisher = createRedisClient(redis.url, { maxReconnectDelayMs: 200 });
  const app = buildApp({
    allowLocalBackends: true,
    database,
    redis: publisher,
    adminTokens: [ADMIN],
    gatewayTokens: [GATEWAY],
    migrate: true,
    invalidation: { maxRetryDelayMs: 200 },
  });
  await app.listen({ host: '127.0.0.1', port: controlPlanePort });
  controlPlanePort = (app.server.address() as AddressInfo).port;
  return {
    url: `http://127.0.0.1:${controlPlanePort}`,
    close: async () => {
      await app.close();
      publisher.disconnect();
    },
  };
}

async function api(method: string, path: string, body?: unknown): Promise<{ status: number; body: Record<string, unknown> }> {
  const response = await fetch(`${controlPlane.url}${path}`, {
    method,
    headers: { authorization: `Bearer ${ADMIN}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  const text = await response.text();
  return { status: response.status, body: text === '' ? {} : (JSON.parse(text) as Record<string, unknown>) };
}

function tenantBody(id: string, backend: PostgresServer, extra: Record<string, unknown> = {}) {
  return {
    id,
    backend: { host: '127.0.0.1', port: backend.port, database: 'postgres' },
    roles: [{ name: 'app', password: PASSWORD }],
    limits: { maxConnections: 1000, connectsPerSecond: 10_000 },
    ...extra,
  };
}

async function create(id: string, backend: PostgresServer): Promise<void> {
  const { status, body } = await api('POST', '/v1/tenants', tenantBody(id, backend));
  assert.equal(status, 201, JSON.stringify(body));
}

function client(tenant: string): pg.Client {
  return new pg.Client({
    host: '127.0.0.1',
    port: gateway.address.port,
    user: 'app',
    password: PASSWORD,
    database: 'postgres',
    ssl: { ca: pki.ca.certPem, servername: `${tenant}.db.example.test` },
  });
}

async function marker(tenant: string): Promise<string> {
  const c = client(tenant);
  await c.connect();
  try {
    return (await c.query<{ name: string }>('select name from marker')).rows[0]!.name;
  } finally {
    await c.end();
  }
}

async function connectError(tenant: string): Promise<{ code?: string; message: string }> {
  const c = client(tenant);
  try {
    await c.connect();
  } catch (error) {
    return error as { code?: string; message: string };
  } finally {
    await c.end().catch(() => {});
  }
  assert.fail('the connection was expected to fail');
}

/** Route requests the control plane answered, from its own /metrics. */
async function routeRequests(): Promise<number> {
  const text = await (await fetch(`${controlPlane.url}/metrics`, { headers: { authorization: `Bearer ${ADMIN}` } })).text();
  return text
    .split('\n')
    .filter((line) => line.startsWith('tenantgate_http_request_duration_seconds_count{') && line.includes('route="/v1/routes/:id"'))
    .reduce((sum, line) => sum + Number(line.split(' ').at(-1)), 0);
}

/**
 * A client that opens TLS, sends its StartupMessage, and leaves at the gateway's first answer:
 * its type ('R' to authenticate, 'E' refused) and, for an ErrorResponse, its SQLSTATE.
 */
async function firstAnswer(tenant: string, localAddress?: string): Promise<{ type: string; code?: string }> {
  const socket = tlsConnect({
    host: '127.0.0.1',
    ...(localAddress === undefined ? {} : { localAddress }),
    port: gateway.address.port,
    servername: `${tenant}.db.example.test`,
    ca: pki.ca.certPem,
    ALPNProtocols: ['postgresql'],
  });
  socket.on('error', () => {});
  try {
    await once(socket, 'secureConnect');
    socket.write(
      serializeStartupMessage({
        minorVersion: 0,
        parameters: new Map([
          ['user', 'app'],
          ['database', 'postgres'],
        ]),
        protocolOptions: new Map(),
      }),
    );
    const [chunk] = (await once(socket, 'data')) as [Buffer];
    const type = String.fromCharCode(chunk[0]!);
    return type === 'E' ? { type, code: /C([0-9A-Z]{5})\0/.exec(chunk.toString('latin1'))?.[1] } : { type };
  } finally {
    socket.destroy();
  }
}

/** The first answer's type only: 'R' when the gateway asks the client to authenticate. */
async function untilAuthentication(tenant: string): Promise<string> {
  return (await firstAnswer(tenant)).type;
}

// The same suite with the control plane's two stores: embedded PGlite and a real PostgreSQL.
for (const kind of ['pglite', 'postgres'] as const)
  describe(`the gateway with the control plane (${kind} store) and Redis`, () => {
    before(async () => {
      store = await createStoreHome(kind);
      pki = await createTestPki();
      const tls = { serverCert: pki.backend.chainPem, serverKey: pki.backend.keyPem, clientCa: pki.ca.certPem };
      [backendA, backendB, redis] = await Promise.all([
        startPostgres({ ...tls, hba: ['hostssl all all 127.0.0.1/32 cert'], roles: [{ name: 'app' }], settings: { max_connections: 40 } }),
        startPostgres({ ...tls, hba: ['hostssl all all 127.0.0.1/32 cert'], roles: [{ name: 'app' }] }),
        startRedis(),
      ]);
      await backendA.sql("create table marker as select 'backend-a' as name; grant select on marker to app");
      await backendB.sql("create table marker as select 'backend-b' as name; grant select on marker to app");
      dir = await mkdtemp(join(tmpdir(), 'tg-cp-gateway-'));
      await writeFile(join(dir, 'ca.pem'), pki.ca.certPem);
      database = await store.open();
      controlPlanePort = 0;
      controlPlane = await startControlPlane();
      const metrics = createMetrics();
      const logger = createLogger({ level: 'silent' });
      const tenants = new ControlPlaneDirectory({
        controlPlaneUrl: controlPlane.url,
        controlPlaneToken: GATEWAY,
        redisUrl: redis.url,
        metrics,
        logger,
      });
      await tenants.ready(AbortSignal.timeout(10_000));
      gateway = await createTestGateway(pki, tenants, { metrics });
    });

    after(async () => {
      await gateway?.close();
      await controlPlane?.close().catch(() => {});
      await database?.close();
      await Promise.all([backendA?.stop(), backendB?.stop(), redis?.stop(), store?.remove()]);
      if (dir !== undefined) await rm(dir, { recursive: true, force: true });
    });

    test('a tenant provisioned after a failed attempt is reachable at once: the invalidation drops the negative entry', async () => {
      assert.equal((await connectError('fresh')).code, '08004');
      await create('fresh', backendA);
      const run = await runPsql(
        {
          host: 'fresh.db.example.test',
          hostaddr: '127.0.0.1',
          port: String(gateway.address.port),
          user: 'app',
          dbname: 'postgres',
          sslmode: 'verify-full',
          sslrootcert: join(dir, 'ca.pem'),
        },
        { sql: 'select name from marker', password: PASSWORD, home: dir },
      );
      assert.deepEqual(run, { code: 0, stdout: 'backend-a\n', stderr: '' });
    });

    test('a changed backend takes effect on the next connection; an open session stays where it is', async () => {
      await create('mover', backendA);
      assert.equal(await marker('mover'), 'backend-a');
      const open = client('mover');
      await open.connect();
      try {
        const patched = await api('PATCH', '/v1/tenants/mover', {
          backend: { host: '127.0.0.1', port: backendB.port, database: 'postgres' },
        });
        assert.equal(patched.status, 200, JSON.stringify(patched.body));
        assert.equal(await marker('mover'), 'backend-b');
        assert.deepEqual((await open.query('select name from marker')).rows, [{ name: 'backend-a' }]);
      } finally {
        await open.end();
      }
    });

    test('suspending refuses new connections at once and leaves open sessions alone; deleting makes the tenant unknown', async () => {
      await create('pausing', backendA);
      const open = client('pausing');
      await open.connect();
      try {
        assert.equal((await api('PATCH', '/v1/tenants/pausing', { status: 'suspended' })).status, 200);
        const refused = await connectError('pausing');
        assert.equal(refused.code, '08004');
        assert.match(refused.message, /suspended/);
        assert.deepEqual((await open.query('select 1 as one')).rows, [{ one: 1 }]);
      } finally {
        await open.end();
      }
      assert.equal((await api('DELETE', '/v1/tenants/pausing')).status, 204);
      const gone = await connectError('pausing');
      assert.equal(gone.code, '08004');
      assert.match(gone.message, /does not exist/);
    });

    test('500 concurrent connections to a tenant not yet cached make exactly one control-plane request', async () => {
      await create('burst', backendA);
      const before = await routeRequests();
      const answers = await Promise.all(Array.from({ length: 500 }, () => untilAuthentication('burst')));
      assert.deepEqual(new Set(answers), new Set(['R']), 'every client was asked to authenticate');
      assert.equal((await routeRequests()) - before, 1);
    });

    test('random tenant names from one address cost at most 20 control-plane requests; tenants it knows still answer', async () => {
      await create('known', backendA);
      assert.equal(await marker('known'), 'backend-a');
      const before = await routeRequests();
      const codes: (string | undefined)[] = [];
      // From 127.0.0.4, so the allowance spent here is not the other tests' (127.0.0.1).
      for (let i = 0; i < 40; i++) codes.push((await firstAnswer(`random-${i}-${Date.now()}`, '127.0.0.4')).code);
      // Each 08004 cost one request and each 53300 none; the allowance (20 at once, then 2 a
      // second) gives the first 20 a lookup, and the 20 after them come faster than it refills.
      const looked = codes.filter((code) => code === '08004').length;
      assert.equal((await routeRequests()) - before, looked, 'a refused name makes the directory ask nothing');
      assert.ok(codes.slice(0, 20).every((code) => code === '08004'));
      assert.ok(codes.slice(20).includes('53300'), 'past its allowance the address is refused');
      assert.ok(codes.every((code) => code === '08004' || code === '53300'));
      // A tenant the gateway holds is still served to that address.
      assert.deepEqual(await firstAnswer('known', '127.0.0.4'), { type: 'R' });
    });

    test('Redis stopped and restarted: connections keep working throughout, and invalidations resume', async () => {
      await create('steady', backendA);
      assert.equal(await marker('steady'), 'backend-a');
      await redis.kill();
      assert.equal(await marker('steady'), 'backend-a');
      await create('during-outage', backendB);
      assert.equal(await marker('during-outage'), 'backend-b');
      await redis.restart();
      assert.equal(await marker('steady'), 'backend-a');
      // Once both sides are back on Redis, a change reaches the gateway without waiting for a TTL.
      await waitFor(async () => (await fetch(`${controlPlane.url}/readyz`)).status === 200);
      await marker('steady');
      assert.equal(
        (await api('PATCH', '/v1/tenants/steady', { backend: { host: '127.0.0.1', port: backendB.port, database: 'postgres' } })).status,
        200,
      );
      await waitFor(async () => (await marker('steady')) === 'backend-b');
    });

    test('control plane stopped: cached tenants keep connecting, uncached ones get 08001 naming the tenant directory', async () => {
      await create('cached', backendA);
      assert.equal(await marker('cached'), 'backend-a');
      await create('never-seen', backendA);
      await controlPlane.close();
      assert.equal(await marker('cached'), 'backend-a');
      const error = await connectError('never-seen');
      assert.equal(error.code, '08001');
      assert.match(error.message, /tenant directory is unreachable/);
      controlPlane = await startControlPlane();
      assert.equal(await marker('never-seen'), 'backend-a');
    });
  });

/** Polls a condition that depends on a reconnect in the background; the test's timeout bounds it. */
async function waitFor(condition: () => Promise<boolean>): Promise<void> {
  while (!(await condition().catch(() => false))) await new Promise((resolve) => setTimeout(resolve, 50));
}
