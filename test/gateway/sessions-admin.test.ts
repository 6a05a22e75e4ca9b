// Acting on sessions (docs/architecture.md, "Drain and shutdown"): the admin port lists a
// gateway's live sessions and ends one with FATAL 57P01, behind GATEWAY_ADMIN_TOKENS; the control
// plane's terminate-sessions, and a suspension that asks for it, end a tenant's sessions on two
// gateway processes through Redis and leave the other tenant's sessions running.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type pg from 'pg';
import { createTestPki, startRedis } from '@tenantgate/testing';
import { call, GATEWAY_TOKEN, startTestControlPlane } from '../control-plane/harness.ts';
import {
  connectError,
  connectPg,
  PASSWORD,
  pgClient,
  psqlExit,
  psqlSettings,
  spawnPsql,
  startCertBackend,
  tenantHost,
  waitForActiveSleep,
} from './harness.ts';
import {
  adminCall,
  adminGatewayFixture,
  GATEWAY_ADMIN_TOKEN,
  gatewayEnvironment,
  startGatewayProcess,
  type GatewayProcess,
} from './app-processes.ts';

interface SessionView {
  id: string;
  tenant: string;
  role: string;
  clientAddress: string;
  state: string;
  ageSeconds: number;
  bytes: { toClient: number; toBackend: number };
}

function admin(gateway: GatewayProcess, method: string, path: string, token: string | null = GATEWAY_ADMIN_TOKEN) {
  return adminCall<{ sessions?: SessionView[]; error?: string }>(gateway, method, path, { token });
}

/**
 * The SQLSTATE of the FATAL an idle session receives once the gateway ends it (node-postgres
 * reports an unsolicited error as the client's 'error' event). Call before ending it.
 */
function endedWith(client: pg.Client): Promise<string | undefined> {
  return new Promise((resolve) => client.once('error', (err: { code?: string }) => resolve(err.code)));
}

test("the admin port lists a gateway's sessions and ends one, behind a token", async (t) => {
  const { pki, dir, backend, tenantsFile, caFile, gateway } = await adminGatewayFixture(t);

  const idle = await connectPg(t, gateway, pki, { servername: tenantHost('acme'), database: 'app' });
  await idle.query('select 1');
  const psql = spawnPsql(psqlSettings(gateway, caFile, 'acme'), 'select pg_sleep(60)', dir);
  const psqlDone = psqlExit(psql);
  await waitForActiveSleep(backend);

  assert.equal((await admin(gateway, 'GET', '/sessions', null)).status, 401);
  assert.equal((await admin(gateway, 'GET', '/sessions', 'not-the-admin-token-0000')).status, 401);
  const listed = await admin(gateway, 'GET', '/sessions');
  assert.equal(listed.status, 200);
  const sessions = listed.body.sessions ?? [];
  assert.equal(sessions.length, 2);
  for (const session of sessions) {
    assert.equal(session.tenant, 'acme');
    assert.equal(session.role, 'app');
    assert.equal(session.clientAddress, '127.0.0.1');
    assert.ok(session.bytes.toClient > 0);
  }
  assert.deepEqual(sessions.map((s) => s.state).sort(), ['active', 'idle']);
  assert.deepEqual((await admin(gateway, 'GET', '/sessions?tenant=globex')).body.sessions, []);

  // Ending the busy one: the query is cancelled on the backend, psql is told why.
  const busy = sessions.find((s) => s.state === 'active')!;
  assert.deepEqual((await admin(gateway, 'DELETE', `/sessions/${busy.id}`)).body, { id: busy.id, terminated: true });
  const { code, stderr } = await psqlDone;
  assert.notEqual(code, 0);
  assert.match(stderr, /terminating connection due to administrator command/);
  const sleeping = async () =>
    Number(
      (
        await backend.sql<{ n: string }>(
          "select count(*) as n from pg_stat_activity where query like 'select pg_sleep%' and state = 'active'",
        )
      )[0]!.n,
    );
  for (let i = 0; i < 100 && (await sleeping()) > 0; i++) await new Promise((resolve) => setTimeout(resolve, 50));
  assert.equal(await sleeping(), 0, "the backend's query was cancelled, not left running");
  assert.equal((await admin(gateway, 'DELETE', `/sessions/${busy.id}`)).status, 404);
  assert.equal((await admin(gateway, 'DELETE', '/sessions/%E0')).status, 404, 'a malformed id is no session');
  assert.equal((await idle.query<{ one: number }>('select 1 as one')).rows[0]!.one, 1, 'the other session carries on');

  const closed = await startGatewayProcess(t, await gatewayEnvironment(pki, { GATEWAY_TENANTS_FILE: tenantsFile }));
  assert.equal((await admin(closed, 'GET', '/sessions')).status, 403, 'no GATEWAY_ADMIN_TOKENS: the endpoints are closed');
});

test("the control plane ends a tenant's sessions on every gateway through Redis, and leaves the others'", async (t) => {
  const pki = await createTestPki();
  const backend = await startCertBackend(t, pki);
  const redis = await startRedis();
  t.after(() => redis.stop());
  const controlPlane = await startTestControlPlane(t, { redisUrl: redis.url });
  for (const id of ['acme', 'globex']) {
    const created = await call(controlPlane.url, 'POST', '/v1/tenants', {
      json: { id, backend: { host: '127.0.0.1', port: backend.port }, roles: [{ name: 'app', password: PASSWORD }] },
    });
    assert.equal(created.status, 201);
  }
  const start = async () =>
    startGatewayProcess(
      t,
      await gatewayEnvironment(pki, {
        GATEWAY_CONTROL_PLANE_URL: controlPlane.url,
        GATEWAY_CONTROL_PLANE_TOKEN: GATEWAY_TOKEN,
        REDIS_URL: redis.url,
      }),
    );
  const [a, b] = [await start(), await start()];
  await Promise.all([a, b].map((g) => g.logLine((line) => line.msg === 'ready: the control plane takes the gateway token')));
  const session = (via: GatewayProcess, id: string) => connectPg(t, via, pki, { servername: tenantHost(id), database: 'app' });
  const acmeOnA = await session(a, 'acme');
  const acmeOnB = await session(b, 'acme');
  const globexOnA = await session(a, 'globex');

  const [acmeOnAEnded, acmeOnBEnded] = [endedWith(acmeOnA), endedWith(acmeOnB)];
  const ended = await call(controlPlane.url, 'POST', '/v1/tenants/acme/terminate-sessions');
  assert.equal(ended.status, 200, JSON.stringify(ended.body));
  assert.deepEqual(ended.body, { tenant: 'acme', gateways: 2, acknowledged: 2, sessionsEnded: 2 });
  assert.equal(await acmeOnAEnded, '57P01');
  assert.equal(await acmeOnBEnded, '57P01');
  assert.equal((await globexOnA.query<{ one: number }>('select 1 as one')).rows[0]!.one, 1, "the other tenant's session runs on");

  // A suspension that ends the sessions at once: the open one ends, and nobody gets back in.
  const again = await session(b, 'acme');
  const againEnded = endedWith(again);
  const suspended = await call(controlPlane.url, 'PATCH', '/v1/tenants/acme', { json: { status: 'suspended', terminateSessions: true } });
  assert.equal(suspended.status, 200, JSON.stringify(suspended.body));
  assert.equal(suspended.body.status, 'suspended');
  assert.equal(suspended.headers.get('tenantgate-sessions-ended'), '1; gateways=2; acknowledged=2');
  assert.equal(await againEnded, '57P01');
  assert.equal((await connectError(pgClient(a, pki, { servername: tenantHost('acme'), database: 'app' }))).code, '08004');
  assert.equal(await call(controlPlane.url, 'POST', '/v1/tenants/nobody/terminate-sessions').then((r) => r.status), 404);

  // Without Redis the control plane cannot reach the gateways, and says so before changing anything.
  const alone = await startTestControlPlane(t);
  await call(alone.url, 'POST', '/v1/tenants', { json: { id: 'solo', backend: { host: '127.0.0.1', port: backend.port } } });
  const unreachable = await call(alone.url, 'POST', '/v1/tenants/solo/terminate-sessions');
  assert.equal(unreachable.status, 503);
  assert.equal(unreachable.body.code, 'TG_ERR_GATEWAYS_UNREACHABLE');
  assert.equal(
    (await call(alone.url, 'PATCH', '/v1/tenants/solo', { json: { status: 'suspended', terminateSessions: true } })).status,
    503,
  );
  assert.equal((await call(alone.url, 'GET', '/v1/tenants/solo')).body.status, 'active', 'nothing changed');
});
