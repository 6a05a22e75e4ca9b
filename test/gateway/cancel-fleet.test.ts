// Cancel routing across a fleet (docs/architecture.md, "Cancel routing"): two gateways share a
// Redis, as instances behind one load balancer do. A CancelRequest for a query running through
// the first, sent to the second, cancels it; the key leaves Redis when the session ends; with
// Redis gone the gateway that holds the session still answers cancels of its own.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Redis } from 'ioredis';
import { MemoryCancelKeyStore, RedisCancelKeyStore, TenantsFileDirectory, type Gateway } from '@tenantgate/gateway';
import { createTestPki, startRedis } from '@tenantgate/testing';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import {
  NO_LIMITS,
  PASSWORD,
  connectPg,
  createTestGateway,
  scratchDir,
  sendCancel,
  startCertBackend,
  tenantHost,
  waitForActiveSleep,
} from './harness.ts';

test('a CancelRequest sent to another gateway of the fleet cancels the query, through Redis', async (t) => {
  const pki = await createTestPki();
  const dir = scratchDir(t, 'gw-cancel-fleet');
  const backend = await startCertBackend(t, pki);
  const redis = await startRedis();
  t.after(() => redis.stop());
  const tenantsFile = join(dir, 'tenants.json');
  const tenant = {
    id: 'acme',
    backend: { host: '127.0.0.1', port: backend.port },
    roles: [{ name: 'app', password: PASSWORD }],
    limits: NO_LIMITS,
  };
  await writeFile(tenantsFile, JSON.stringify({ tenants: [tenant] }));
  const gatewayWithRedis = async (): Promise<Gateway> => {
    const connection = new Redis(redis.url, { enableOfflineQueue: false, maxRetriesPerRequest: 0, commandTimeout: 500 });
    connection.on('error', () => {});
    // A short TTL: refreshed every 200 ms, so the test sees a key written back after Redis restarts.
    const cancelStore = new RedisCancelKeyStore({ redis: connection, local: new MemoryCancelKeyStore(), ttlMs: 600 });
    const gateway = await createTestGateway(pki, await TenantsFileDirectory.open(tenantsFile), { cancelStore });
    t.after(() => gateway.close());
    return gateway;
  };
  const [first, second] = [await gatewayWithRedis(), await gatewayWithRedis()];
  const inspector = new Redis(redis.url);
  inspector.on('error', () => {});
  t.after(() => inspector.disconnect());

  const client = await connectPg(t, first!, pki, { servername: tenantHost('acme'), database: 'app' });
  const { processID, secretKey } = client as unknown as { processID: number; secretKey: number };
  assert.equal((await inspector.keys('tenantgate:cancel:*')).length, 1, 'the key is in Redis');
  /** A pg_sleep on the session, cancelled by a CancelRequest sent to `via`. */
  const cancelThrough = async (via: Gateway): Promise<void> => {
    const sleeping = client.query('select pg_sleep(30)');
    await waitForActiveSleep(backend);
    await sendCancel(via, processID, secretKey);
    await assert.rejects(sleeping, (error: { code?: string }) => error.code === '57014');
  };
  await cancelThrough(second!);

  // Redis gone: the gateway that holds the session still cancels from its own memory.
  await redis.kill();
  await cancelThrough(first!);
  await redis.restart();

  // Redis restarted empty: the holder writes its key back at its next refresh (every TTL/3).
  for (let i = 0; i < 100 && (await inspector.keys('tenantgate:cancel:*').catch(() => [])).length === 0; i++) {
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  assert.equal((await inspector.keys('tenantgate:cancel:*')).length, 1, 'the key is back in Redis');
  await cancelThrough(second!);
  await client.end();
  await new Promise((resolve) => setTimeout(resolve, 200));
  assert.deepEqual(await inspector.keys('tenantgate:cancel:*'), [], 'no key outlives its session');
});
