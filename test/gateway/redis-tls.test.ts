// Redis over TLS with a password, as ElastiCache with in-transit encryption and an AUTH token:
// `rediss://:<password>@host` in both apps, against a local redis-server that serves TLS only
// and requires the password. Both run as processes trusting the test CA through Node's own
// NODE_EXTRA_CA_CERTS. Through that Redis: the gateway caches the route, the control plane's
// invalidation reaches the gateway at once, cancel keys and connection leases are stored.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { createTestPki, getFreePort, startRedis } from '@tenantgate/testing';
import { ADMIN_TOKEN, call, GATEWAY_TOKEN } from '../control-plane/harness.ts';
import { connectError, connectPg, PASSWORD, pgClient, scratchDir, startCertBackend, tenantHost } from './harness.ts';
import { CONTROL_PLANE_MAIN, gatewayEnvironment, startAppProcess, startGatewayProcess } from './app-processes.ts';

test('both apps use rediss:// with a password: routes, invalidations, cancel keys and leases go through it', async (t) => {
  const pki = await createTestPki();
  const dir = scratchDir(t, 'gw-redis-tls');
  const backend = await startCertBackend(t, pki);
  const password = 'auth/token+with:chars';
  const redis = await startRedis({ tls: { certPem: pki.backend.chainPem, keyPem: pki.backend.keyPem }, password });
  t.after(() => redis.stop());
  assert.match(redis.url, /^rediss:\/\/:auth%2Ftoken%2Bwith%3Achars@127\.0\.0\.1:\d+$/);
  const caFile = join(dir, 'ca.pem');
  await writeFile(caFile, pki.ca.certPem);
  const trust = { NODE_EXTRA_CA_CERTS: caFile };

  const listen = `127.0.0.1:${await getFreePort()}`;
  const controlPlane = await startAppProcess(
    t,
    CONTROL_PLANE_MAIN,
    {
      PATH: process.env.PATH ?? '',
      ...trust,
      CONTROL_PLANE_LISTEN: listen,
      CONTROL_PLANE_DATA_DIR: join(dir, 'control-plane'),
      REDIS_URL: redis.url,
      CONTROL_PLANE_ADMIN_TOKENS: ADMIN_TOKEN,
      CONTROL_PLANE_GATEWAY_TOKENS: GATEWAY_TOKEN,
      CONTROL_PLANE_ALLOW_LOCAL_BACKENDS: 'true',
    },
    'control plane ready',
  );
  const base = `http://${listen}`;
  const ready = await call(base, 'GET', '/readyz', { token: null });
  assert.equal(ready.status, 200, JSON.stringify(ready.body));
  assert.equal(ready.body.redis, 'up', 'the control plane reached Redis over TLS with the password');
  const created = await call(base, 'POST', '/v1/tenants', {
    json: { id: 'acme', backend: { host: '127.0.0.1', port: backend.port }, roles: [{ name: 'app', password: PASSWORD }] },
  });
  assert.equal(created.status, 201, JSON.stringify(created.body));

  const gateway = await startGatewayProcess(
    t,
    await gatewayEnvironment(pki, {
      ...trust,
      GATEWAY_CONTROL_PLANE_URL: base,
      GATEWAY_CONTROL_PLANE_TOKEN: GATEWAY_TOKEN,
      REDIS_URL: redis.url,
    }),
  );
  const client = await connectPg(t, gateway, pki, { servername: tenantHost('acme'), database: 'app' });
  assert.equal((await client.query<{ u: string }>('select current_user as u')).rows[0]!.u, 'app');

  const inspector = new Redis(redis.url, { tls: { ca: pki.ca.certPem } });
  t.after(() => inspector.disconnect());
  assert.ok((await inspector.get('tenantgate:route:acme')) !== null, 'the route is cached in Redis');
  assert.equal((await inspector.keys('tenantgate:cancel:*')).length, 1, 'the cancel key is in Redis');
  assert.equal(await inspector.zcard('tenantgate:leases:{acme}'), 1, 'the session holds a lease');
  assert.equal(await gateway.metric('tenantgate_fleet_limits_lost'), 0);

  // A write on the control plane reaches the gateway through Redis's channel, not a TTL.
  const suspended = await call(base, 'PATCH', '/v1/tenants/acme', { json: { status: 'suspended' } });
  assert.equal(suspended.status, 200, JSON.stringify(suspended.body));
  let refused: { code?: string } | undefined;
  for (let i = 0; i < 100 && refused?.code !== '08004'; i++) {
    refused = await connectError(pgClient(gateway, pki, { servername: tenantHost('acme'), database: 'app' })).catch(() => undefined);
    if (refused?.code !== '08004') await new Promise((resolve) => setTimeout(resolve, 50));
  }
  assert.equal(refused?.code, '08004', 'the suspension reached the gateway');
  await client.end();
  await controlPlane.stop();
});
