// Databases provisioned by the control plane on a registered cluster (a real PostgreSQL with TLS
// and client certificates): one API call gives a tenant its own database and roles, whose SCRAM
// secrets are the same at the edge and on the backend; the gateway reaches each tenant's own
// database and nothing else; rotation, deletion (data kept unless dropDatabase) and the failures
// a platform team will meet each give a clear answer and leave nothing half-made.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import pg from 'pg';
import type { Gateway } from '@tenantgate/gateway';
import {
  createTempDir,
  createTestPki,
  getFreePort,
  removeTempDir,
  startPostgres,
  startRedis,
  type PostgresServer,
  type RedisServer,
  type TestPki,
} from '@tenantgate/testing';
import { call, createStoreHome, eventually, GATEWAY_TOKEN, startApp, type RunningApp, type StoreHome } from '../control-plane/harness.ts';
import { CONTROL_PLANE_MAIN, startAppProcess } from './app-processes.ts';
import { connectError, controlPlaneDirectory, createTestGateway, tenantHost } from './harness.ts';

const ADMIN_HBA = 'hostssl all postgres 127.0.0.1/32 cert';
const USER_HBA = 'hostssl all all 127.0.0.1/32 scram-sha-256';

let pki: TestPki;
let cluster: PostgresServer;
let redis: RedisServer;
let secretsDir: string;
let home: StoreHome;
let controlPlane: RunningApp;
let gateway: Gateway;

/** A cluster registration for `server`, its admin logging in with the credential `credential`. */
function clusterBody(id: string, server: PostgresServer, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    id,
    host: '127.0.0.1',
    port: server.port,
    serverName: 'localhost',
    caCertificate: pki.ca.certPem,
    adminUser: 'postgres',
    adminCredential: 'cluster-admin',
    ...extra,
  };
}

function tenantOn(clusterId: string, id: string, password: string, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return { id, backend: { cluster: clusterId }, roles: [{ name: 'app', password }], ...extra };
}

/** A node-postgres client through the gateway (not connected). */
function viaGateway(tenant: string, password: string, user = 'app', database = 'whatever'): pg.Client {
  const client = new pg.Client({
    host: '127.0.0.1',
    port: gateway.address.port,
    user,
    password,
    database,
    ssl: { ca: pki.ca.certPem, servername: tenantHost(tenant) },
  });
  client.on('error', () => {});
  return client;
}

/** A node-postgres client straight to the cluster, as `user` with a password (not connected). */
function direct(server: PostgresServer, user: string, password: string, database: string): pg.Client {
  const client = new pg.Client({
    host: '127.0.0.1',
    port: server.port,
    user,
    password,
    database,
    ssl: { ca: pki.ca.certPem, servername: 'localhost' },
  });
  client.on('error', () => {});
  return client;
}

async function queryOnce<Row extends Record<string, unknown>>(client: pg.Client, sql: string): Promise<Row[]> {
  await client.connect();
  try {
    return (await client.query<Row>(sql)).rows;
  } finally {
    await client.end();
  }
}

async function roleNames(server: PostgresServer, pattern: string): Promise<string[]> {
  const rows = await server.sql<{ rolname: string }>('SELECT rolname FROM pg_roles WHERE rolname LIKE $1 ORDER BY 1', [pattern]);
  return rows.map((row) => row.rolname);
}

async function databaseExists(server: PostgresServer, name: string): Promise<boolean> {
  return (await server.sql('SELECT 1 FROM pg_database WHERE datname = $1', [name])).length > 0;
}

const api = (method: string, path: string, json?: unknown) => call(controlPlane.url, method, path, json === undefined ? {} : { json });

describe('databases provisioned on a registered cluster', () => {
  before(async () => {
    pki = await createTestPki();
    [cluster, redis] = await Promise.all([
      startPostgres({
        serverCert: pki.backend.chainPem,
        serverKey: pki.backend.keyPem,
        clientCa: pki.ca.certPem,
        hba: [ADMIN_HBA, USER_HBA],
      }),
      startRedis(),
    ]);
    secretsDir = createTempDir('cp-secrets');
    const admin = await pki.client('postgres');
    await writeFile(join(secretsDir, 'cluster-admin.crt'), admin.chainPem);
    await writeFile(join(secretsDir, 'cluster-admin.key'), admin.keyPem);
    home = await createStoreHome('pglite');
    controlPlane = await startApp(await home.open(), {
      redisUrl: redis.url,
      migrate: true,
      allowLocalBackends: true,
      secretsDir,
      provisioningPollMs: 200,
    });
    gateway = await createTestGateway(pki, await controlPlaneDirectory(controlPlane.url, GATEWAY_TOKEN, redis.url));
  });

  after(async () => {
    await gateway?.close();
    await controlPlane?.close();
    await home?.remove();
    await Promise.all([cluster?.stop(), redis?.stop()]);
    if (secretsDir !== undefined) removeTempDir(secretsDir);
  });

  test('a registered cluster reports its version and free slots; two tenants each reach only their own database', async () => {
    const registered = await api('POST', '/v1/clusters', clusterBody('main', cluster));
    assert.equal(registered.status, 201, JSON.stringify(registered.body));
    assert.match(registered.body.serverVersion, /^\d+/);
    assert.ok(registered.body.freeConnections > 0);
    assert.equal((await api('POST', '/v1/clusters', clusterBody('main', cluster))).body.code, 'TG_ERR_CLUSTER_EXISTS');
    const listed = await api('GET', '/v1/clusters');
    assert.deepEqual(
      listed.body.items.map((c: { id: string }) => c.id),
      ['main'],
    );

    for (const [id, password] of [
      ['acme', 'acme-pw'],
      ['globex', 'globex-pw'],
    ] as const) {
      const created = await api('POST', '/v1/tenants', tenantOn('main', id, password));
      assert.equal(created.status, 201, JSON.stringify(created.body));
      assert.deepEqual(created.body.provisioning, { cluster: 'main', state: 'active' });
      assert.equal(created.body.backend.host, '127.0.0.1');
      assert.equal(created.body.backend.database, id);
      assert.deepEqual(created.body.roles, [{ name: 'app', backendUser: `${id}_app` }]);
    }

    // One secret on both sides: what the edge checks is what the backend stores.
    const route = await call(controlPlane.url, 'GET', '/v1/routes/acme', { token: GATEWAY_TOKEN });
    const [stored] = await cluster.sql<{ rolpassword: string }>(`SELECT rolpassword FROM pg_authid WHERE rolname = 'acme_app'`);
    assert.equal(route.body.roles[0].scramSecret, stored!.rolpassword);

    // Through the gateway: each tenant's own database, whatever database the client names; its
    // role may create tables there.
    const acme = viaGateway('acme', 'acme-pw', 'app', 'globex');
    await acme.connect();
    const [who] = (await acme.query('SELECT current_user AS u, current_database() AS d')).rows;
    assert.deepEqual(who, { u: 'acme_app', d: 'acme' });
    await acme.query('CREATE TABLE orders (id int); INSERT INTO orders VALUES (1), (2)');
    await acme.end();
    const globexRows = await queryOnce<{ d: string; n: string }>(
      viaGateway('globex', 'globex-pw'),
      "SELECT current_database() AS d, (SELECT count(*) FROM pg_tables WHERE tablename = 'orders')::text AS n",
    );
    assert.deepEqual(globexRows, [{ d: 'globex', n: '0' }]);

    // Another tenant's password is wrong here, as any wrong password.
    assert.equal((await connectError(viaGateway('acme', 'globex-pw'))).code, '28P01');
    // Straight to the cluster: the role logs in to its own database, never to the other's.
    assert.deepEqual(await queryOnce(direct(cluster, 'acme_app', 'acme-pw', 'acme'), 'SELECT count(*)::int AS n FROM orders'), [{ n: 2 }]);
    const crossed = await connectError(direct(cluster, 'acme_app', 'acme-pw', 'globex'));
    assert.equal(crossed.code, '42501', crossed.message);
    assert.match(crossed.message, /permission denied for database "globex"/);
    assert.equal((await connectError(direct(cluster, 'globex_app', 'globex-pw', 'acme'))).code, '42501');
  });

  test('a password change takes effect on the next connection, on both sides; roles come and go on the cluster', async () => {
    const rotated = await api('PUT', '/v1/tenants/acme/roles/app', { password: 'acme-pw-2' });
    assert.equal(rotated.status, 200, JSON.stringify(rotated.body));
    assert.equal((await connectError(viaGateway('acme', 'acme-pw'))).code, '28P01');
    assert.deepEqual(await queryOnce(viaGateway('acme', 'acme-pw-2'), 'SELECT count(*)::int AS n FROM orders'), [{ n: 2 }]);
    assert.equal((await connectError(direct(cluster, 'acme_app', 'acme-pw', 'acme'))).code, '28P01');

    const added = await api('PUT', '/v1/tenants/acme/roles/reporter', { password: 'report-pw' });
    assert.equal(added.status, 201, JSON.stringify(added.body));
    assert.deepEqual(await queryOnce(viaGateway('acme', 'report-pw', 'reporter'), 'SELECT current_user AS u'), [{ u: 'acme_reporter' }]);
    const mismatched = await api('PUT', '/v1/tenants/acme/roles/reporter', { password: 'x', backendUser: 'someone' });
    assert.equal(mismatched.status, 400);
    assert.match(mismatched.body.message, /acme_reporter/);

    const removed = await api('DELETE', '/v1/tenants/acme/roles/reporter');
    assert.equal(removed.status, 200, JSON.stringify(removed.body));
    assert.deepEqual(await roleNames(cluster, 'acme%'), ['acme', 'acme_app']);

    // A name on the cluster that is not the tenant's is refused, and nothing is stored.
    await cluster.sql('CREATE ROLE acme_intruder LOGIN');
    const refused = await api('PUT', '/v1/tenants/acme/roles/intruder', { password: 'pw' });
    assert.equal(refused.status, 502);
    assert.equal(refused.body.code, 'TG_ERR_BACKEND_REFUSED');
    assert.match(refused.body.message, /"acme_intruder" exists on the cluster and is not tenant "acme"'s/);
    const after = await api('GET', '/v1/tenants/acme');
    assert.deepEqual(
      after.body.roles.map((r: { name: string }) => r.name),
      ['app'],
    );
  });

  test('a cluster with tenants cannot be deleted; deleting a tenant keeps its data unless dropDatabase=true', async () => {
    const inUse = await api('DELETE', '/v1/clusters/main');
    assert.equal(inUse.status, 409);
    assert.equal(inUse.body.code, 'TG_ERR_CLUSTER_IN_USE');

    await queryOnce(viaGateway('globex', 'globex-pw'), "CREATE TABLE kept AS SELECT 'still here' AS note");
    assert.equal((await api('DELETE', '/v1/tenants/globex')).status, 204);
    assert.equal((await connectError(viaGateway('globex', 'globex-pw'))).code, '08004');
    assert.deepEqual(await cluster.sql('SELECT note FROM kept', [], { database: 'globex' }), [{ note: 'still here' }]);
    // Created again, the tenant finds its data.
    assert.equal((await api('POST', '/v1/tenants', tenantOn('main', 'globex', 'globex-pw-new'))).status, 201);
    assert.deepEqual(await queryOnce(viaGateway('globex', 'globex-pw-new'), 'SELECT note FROM kept'), [{ note: 'still here' }]);

    // dropDatabase: the open session is ended, then the database and roles are gone.
    const session = viaGateway('acme', 'acme-pw-2');
    await session.connect();
    const ended = new Promise<Error>((resolve) => session.once('error', resolve));
    assert.equal((await api('DELETE', '/v1/tenants/acme?dropDatabase=true')).status, 204);
    assert.match((await ended).message, /terminat/);
    assert.equal(await databaseExists(cluster, 'acme'), false);
    assert.deepEqual(await roleNames(cluster, 'acme%'), ['acme_intruder']);
    assert.equal((await api('DELETE', '/v1/tenants/globex?dropDatabase=true')).status, 204);
    assert.equal(await databaseExists(cluster, 'globex'), false);
    assert.equal((await api('DELETE', '/v1/clusters/main')).status, 204);
  });

  test('a wrong credential, a wrong CA, an unreachable cluster or a weak admin is refused and nothing is stored', async () => {
    await writeFile(join(secretsDir, 'wrong.password'), 'not-the-password\n');
    const wrong = await api('POST', '/v1/clusters', clusterBody('wrong', cluster, { adminCredential: 'wrong' }));
    assert.equal(wrong.status, 502);
    assert.equal(wrong.body.code, 'TG_ERR_BACKEND_AUTH_FAILED');

    const missing = await api('POST', '/v1/clusters', clusterBody('missing', cluster, { adminCredential: 'nobody' }));
    assert.equal(missing.status, 400);
    assert.deepEqual(missing.body.details.issues[0].path, '/adminCredential');

    const untrusted = await api('POST', '/v1/clusters', clusterBody('untrusted', cluster, { caCertificate: pki.wrongCa.certPem }));
    assert.equal(untrusted.status, 502);
    assert.equal(untrusted.body.code, 'TG_ERR_BACKEND_UNREACHABLE');
    assert.match(untrusted.body.message, /certificate/);

    const closedPort = await getFreePort();
    const unreachable = await api('POST', '/v1/clusters', clusterBody('gone', cluster, { port: closedPort }));
    assert.equal(unreachable.status, 502);
    assert.equal(unreachable.body.code, 'TG_ERR_BACKEND_UNREACHABLE');
    assert.match(unreachable.body.message, /ECONNREFUSED/);

    await cluster.sql("CREATE ROLE weak LOGIN CREATEROLE PASSWORD 'weak-pw'");
    await writeFile(join(secretsDir, 'weak.password'), 'weak-pw');
    const weak = await api('POST', '/v1/clusters', clusterBody('weak', cluster, { adminUser: 'weak', adminCredential: 'weak' }));
    assert.equal(weak.status, 502);
    assert.equal(weak.body.code, 'TG_ERR_BACKEND_REFUSED');
    assert.match(weak.body.message, /CREATEDB/);

    assert.deepEqual((await api('GET', '/v1/clusters')).body.items, []);
  });

  test('a cluster that refuses CREATE DATABASE: the tenant ends failed with nothing left on the cluster, and a retry completes', async () => {
    // An admin with a password credential and just the privileges it needs, then one taken away.
    await cluster.sql("CREATE ROLE provisioner LOGIN CREATEROLE CREATEDB PASSWORD 'prov-pw'");
    await writeFile(join(secretsDir, 'provisioner.password'), 'prov-pw');
    const registered = await api(
      'POST',
      '/v1/clusters',
      clusterBody('limited', cluster, { adminUser: 'provisioner', adminCredential: 'provisioner' }),
    );
    assert.equal(registered.status, 201, JSON.stringify(registered.body));
    // A password credential serves one cluster: another host could collect it in the clear.
    const reused = await api(
      'POST',
      '/v1/clusters',
      clusterBody('elsewhere', cluster, { adminUser: 'provisioner', adminCredential: 'provisioner' }),
    );
    assert.equal(reused.status, 400);
    assert.match(reused.body.message, /password of cluster "limited"/);
    await cluster.sql('ALTER ROLE provisioner NOCREATEDB');

    const refused = await api('POST', '/v1/tenants', tenantOn('limited', 'initech', 'initech-pw'));
    assert.equal(refused.status, 502, JSON.stringify(refused.body));
    assert.equal(refused.body.code, 'TG_ERR_BACKEND_REFUSED');
    assert.equal(refused.body.details.sqlstate, '42501');
    assert.equal(refused.body.details.state, 'failed');
    const failed = await api('GET', '/v1/tenants/initech');
    assert.equal(failed.body.provisioning.state, 'failed');
    assert.match(failed.body.provisioning.reason.message, /permission denied to create database/);
    // Rolled back: the owner role it had made is gone; there is no route.
    assert.deepEqual(await roleNames(cluster, 'initech%'), []);
    assert.equal((await connectError(viaGateway('initech', 'initech-pw'))).code, '08004');
    const metrics = (await call(controlPlane.url, 'GET', '/metrics')).body as string;
    assert.match(metrics, /^tenantgate_provisioning_failures_total\{action="create"\} 1$/m);
    assert.match(metrics, /^tenantgate_provisioning_jobs\{action="rollback"\} 0$/m);

    await cluster.sql('ALTER ROLE provisioner CREATEDB');
    const retried = await api('POST', '/v1/tenants', tenantOn('limited', 'initech', 'initech-pw'));
    assert.equal(retried.status, 201, JSON.stringify(retried.body));
    assert.deepEqual(await queryOnce(viaGateway('initech', 'initech-pw'), 'SELECT current_user AS u'), [{ u: 'initech_app' }]);
  });
});

test('a control plane killed half-way through provisioning: the next one finishes the job, and nothing is half-made', async (t) => {
  pki ??= await createTestPki();
  const pkiK = pki;
  const server = await startPostgres({
    serverCert: pkiK.backend.chainPem,
    serverKey: pkiK.backend.keyPem,
    clientCa: pkiK.ca.certPem,
    hba: [ADMIN_HBA, USER_HBA],
  });
  t.after(() => server.stop());
  const dir = createTempDir('cp-killed');
  t.after(() => removeTempDir(dir));
  const admin = await pkiK.client('postgres');
  await writeFile(join(dir, 'admin.crt'), admin.chainPem);
  await writeFile(join(dir, 'admin.key'), admin.keyPem);
  const port = await getFreePort();
  const env = {
    PATH: process.env.PATH ?? '',
    CONTROL_PLANE_LISTEN: `127.0.0.1:${port}`,
    CONTROL_PLANE_DATA_DIR: join(dir, 'store'),
    CONTROL_PLANE_ADMIN_TOKENS: 'admin-token-0123456789abcdef',
    CONTROL_PLANE_SECRETS_DIR: dir,
    CONTROL_PLANE_ALLOW_LOCAL_BACKENDS: 'true',
    LOG_LEVEL: 'info',
  };
  const url = `http://127.0.0.1:${port}`;
  const first = await startAppProcess(t, CONTROL_PLANE_MAIN, env, 'control plane ready');
  const body = {
    id: 'k1',
    host: '127.0.0.1',
    port: server.port,
    caCertificate: pkiK.ca.certPem,
    adminUser: 'postgres',
    adminCredential: 'admin',
  };
  assert.equal((await call(url, 'POST', '/v1/clusters', { json: body })).status, 201);

  // Someone else is creating the role the job needs next: its CREATE ROLE waits on that transaction.
  const blocker = new pg.Client(
    server.clientConfig({
      user: 'postgres',
      ssl: { ca: pkiK.ca.certPem, cert: admin.chainPem, key: admin.keyPem, servername: 'localhost' },
    }),
  );
  blocker.on('error', () => {});
  await blocker.connect();
  await blocker.query('BEGIN; CREATE ROLE slowco_app');
  const pending = call(url, 'POST', '/v1/tenants', { json: tenantOn('k1', 'slowco', 'slow-pw') }).catch((error: Error) => error);
  await eventually('the job to wait on the lock', async () => {
    const rows = await server.sql(
      `SELECT 1 FROM pg_stat_activity WHERE application_name = 'tenantgate-control-plane' AND wait_event_type = 'Lock'`,
    );
    return rows.length > 0 ? true : undefined;
  });
  // Half-way: the database and its owner exist, the login role does not.
  assert.equal(await databaseExists(server, 'slowco'), true);
  await first.stop('SIGKILL');
  assert.ok((await pending) instanceof Error);
  await blocker.query('ROLLBACK');
  await blocker.end();

  const second = await startAppProcess(t, CONTROL_PLANE_MAIN, env, 'control plane ready');
  t.after(() => second.stop());
  // The dead control plane's lease runs out, then this one resumes the job.
  const state = await eventually(
    'the tenant to leave provisioning',
    async () => {
      const { body: tenant } = await call(url, 'GET', '/v1/tenants/slowco');
      return tenant.provisioning.state === 'provisioning' ? undefined : (tenant.provisioning.state as string);
    },
    40_000,
  );
  if (state === 'failed') {
    assert.deepEqual(await roleNames(server, 'slowco%'), []);
    assert.equal((await call(url, 'POST', '/v1/tenants', { json: tenantOn('k1', 'slowco', 'slow-pw') })).status, 201);
  }
  assert.deepEqual(await roleNames(server, 'slowco%'), ['slowco', 'slowco_app']);
  assert.deepEqual(await queryOnce(direct(server, 'slowco_app', 'slow-pw', 'slowco'), 'SELECT current_database() AS d'), [{ d: 'slowco' }]);
});
