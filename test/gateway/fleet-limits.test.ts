// Tenants' connection caps and connect rates across a fleet (docs/architecture.md, step 7): two
// gateway processes share one redis-server, as instances behind a load balancer do. A cap holds
// across both; a SIGKILLed instance's capacity comes back once its leases expire; with Redis
// gone each instance enforces the limits alone and says so once; a connect rate is one bucket
// for the whole fleet.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import type pg from 'pg';
import { createTestPki, startRedis } from '@tenantgate/testing';
import { connectError, connectPg, PASSWORD, pgClient, scratchDir, startCertBackend, tenantHost } from './harness.ts';
import { gatewayEnvironment, startGatewayProcess, type GatewayProcess } from './app-processes.ts';

/** Short, so that a killed instance's leases expire within the test: renewed every 500 ms. */
const LEASE_MS = 1500;
const LOST = "tenant limits: Redis cannot be asked; this gateway enforces tenants' connection caps and rates alone";

test('connection caps and connect rates hold across two gateway processes sharing Redis', async (t) => {
  const pki = await createTestPki();
  const dir = scratchDir(t, 'gw-fleet-limits');
  const backend = await startCertBackend(t, pki);
  const redis = await startRedis();
  t.after(() => redis.stop());
  const tenant = (id: string, limits: { maxConnections: number; connectsPerSecond: number }) => ({
    id,
    backend: { host: '127.0.0.1', port: backend.port },
    roles: [{ name: 'app', password: PASSWORD }],
    limits,
  });
  const tenantsFile = join(dir, 'tenants.json');
  await writeFile(
    tenantsFile,
    JSON.stringify({
      tenants: [
        tenant('acme', { maxConnections: 3, connectsPerSecond: 1000 }),
        tenant('burst', { maxConnections: 100, connectsPerSecond: 3 }),
      ],
    }),
  );
  const start = async (): Promise<GatewayProcess> =>
    startGatewayProcess(
      t,
      await gatewayEnvironment(pki, { GATEWAY_TENANTS_FILE: tenantsFile, REDIS_URL: redis.url, GATEWAY_FLEET_LEASE_MS: String(LEASE_MS) }),
    );
  const b = await start();
  let a = await start();
  const inspector = new Redis(redis.url, { maxRetriesPerRequest: 1 });
  inspector.on('error', () => {});
  t.after(() => inspector.disconnect());
  const leases = (): Promise<number> => inspector.zcard('tenantgate:leases:{acme}');
  const session = (via: GatewayProcess, id = 'acme'): Promise<pg.Client> =>
    connectPg(t, via, pki, { servername: tenantHost(id), database: 'app' });
  const refusal = (via: GatewayProcess, id = 'acme') => connectError(pgClient(via, pki, { servername: tenantHost(id), database: 'app' }));
  const until = async (what: string, done: () => Promise<boolean>): Promise<number> => {
    const started = performance.now();
    for (let i = 0; i < 300; i++) {
      if (await done()) return performance.now() - started;
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    assert.fail(`${what} did not happen in 15 s`);
  };

  // maxConnections 3: two sessions on A and one on B fill it; the fourth is refused on either.
  const [first, second] = [await session(a), await session(a)];
  const third = await session(b);
  for (const via of [a, b]) {
    const refused = await refusal(via);
    assert.equal(refused.code, '53300');
    assert.match(refused.message, /too many connections for tenant "acme"/);
    assert.match(refused.detail ?? '', /3 concurrent connections/);
  }
  assert.equal(await leases(), 3, 'one lease per live session');
  await third.end();
  await until('the closed session giving its lease back', async () => (await leases()) === 2);
  const fourth = await session(b);

  // A dies holding two sessions: B is at the cap until A's leases expire, then admits again.
  assert.equal((await refusal(b)).code, '53300');
  await a.stop('SIGKILL');
  void first.end().catch(() => {});
  void second.end().catch(() => {});
  let revived: pg.Client | undefined;
  const back = await until("A's capacity coming back", async () => {
    const client = pgClient(b, pki, { servername: tenantHost('acme'), database: 'app' });
    client.on('error', () => {});
    try {
      await client.connect();
    } catch {
      return false;
    }
    revived = client;
    return true;
  });
  t.diagnostic(`a SIGKILLed instance's capacity came back after ${Math.round(back)} ms (lease ${LEASE_MS} ms)`);
  await Promise.all([fourth.end(), revived!.end()]);
  await until('the sessions giving their leases back', async () => (await leases()) === 0);

  // Redis gone: each instance admits up to the cap on its own, and says once that it does.
  a = await start();
  await redis.kill();
  const onA: pg.Client[] = [];
  const onB: pg.Client[] = [];
  for (const [via, sessions] of [
    [a, onA],
    [b, onB],
  ] as const) {
    for (let i = 0; i < 3; i++) sessions.push(await session(via));
    assert.equal((await refusal(via)).code, '53300', "each instance's own cap still holds");
    assert.equal(via.lines.filter((line) => line.msg === LOST).length, 1, 'the lost fleet view is logged once');
    assert.equal(await via.metric('tenantgate_fleet_limits_lost'), 1);
  }
  await redis.restart();
  // Back: the sessions admitted meanwhile are written at the next renewal, and the gauge clears.
  await until('the leases written back', async () => (await leases().catch(() => 0)) === 6);
  for (const via of [a, b]) await until('the gauge clearing', async () => (await via.metric('tenantgate_fleet_limits_lost')) === 0);
  await Promise.all(onB.map((client) => client.end()));
  await until("B's sessions giving their leases back", async () => (await leases()) === 3);
  assert.equal((await refusal(b)).code, '53300', "the fleet counts A's sessions made without Redis");
  await Promise.all(onA.map((client) => client.end()));

  // A gateway that stops in order gives back the leases of the sessions it cut at the drain
  // deadline at once, not after its lease time (a minute here).
  const c = await startGatewayProcess(
    t,
    await gatewayEnvironment(pki, {
      GATEWAY_TENANTS_FILE: tenantsFile,
      REDIS_URL: redis.url,
      GATEWAY_FLEET_LEASE_MS: '60000',
      GATEWAY_DRAIN_SECONDS: '1',
    }),
  );
  const busy = await session(c);
  busy.on('error', () => {});
  const sleeping = busy.query('select pg_sleep(30)').catch(() => {});
  await until('the busy session holding a lease', async () => (await leases()) === 1);
  await c.stop('SIGTERM');
  await sleeping;
  assert.equal(await leases(), 0, 'the stopped gateway took its lease back');

  // connectsPerSecond 3 for the fleet: a burst spread over both instances gets about 3 sessions,
  // not 3 per instance. The bound allows what the bucket refills while the burst runs.
  const burstStarted = performance.now();
  const outcomes = await Promise.all(
    Array.from({ length: 16 }, async (_, i) => {
      const client = pgClient(i % 2 === 0 ? a : b, pki, { servername: tenantHost('burst'), database: 'app' });
      client.on('error', () => {});
      try {
        await client.connect();
        await client.end();
        return 'admitted';
      } catch (error) {
        await client.end().catch(() => {});
        return (error as { code?: string; message: string }).code === '53300' && /per second/.test((error as Error).message)
          ? 'rate'
          : String(error);
      }
    }),
  );
  const seconds = (performance.now() - burstStarted) / 1000;
  const admitted = outcomes.filter((o) => o === 'admitted').length;
  assert.deepEqual(
    outcomes.filter((o) => o !== 'admitted' && o !== 'rate'),
    [],
    'every refusal names the rate',
  );
  t.diagnostic(`connect burst: ${admitted} of 16 admitted in ${seconds.toFixed(2)} s at 3/s for the fleet`);
  assert.ok(admitted >= 3, 'the bucket starts full');
  assert.ok(admitted <= 3 + Math.ceil(3 * seconds) + 1, `${admitted} admitted: more than one bucket for the fleet allows`);
});
