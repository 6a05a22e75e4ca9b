// Cancel routing across a fleet (docs/architecture.md, "Cancel routing"): two gateways share a
// Redis, as instances behind one load balancer do. A CancelRequest for a query running through
// the first, sent to the second, cancels it; the key leaves Redis when the session ends; with
// Redis gone the gateway that holds the session still answers cancels of its own. Protocol 3.2
// keys (32 bytes) travel the same way.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Redis } from 'ioredis';
import {
  createMetrics,
  MemoryCancelKeyStore,
  MetricName,
  RedisCancelKeyStore,
  TenantsFileDirectory,
  type Gateway,
  type GatewayMetrics,
} from '@tenantgate/gateway';
import { createTestPki, startRedis } from '@tenantgate/testing';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import {
  NO_LIMITS,
  PASSWORD,
  connectPg,
  createTestGateway,
  errorFields,
  nextMessage,
  scramLogin,
  queryMessage,
  scratchDir,
  sendCancel,
  serverMessages,
  startCertBackend,
  tenantHost,
  upgradeToTls,
  waitForActiveSleep,
} from './harness.ts';
import { serializeCancelRequest, serializeStartupMessage } from '@tenantgate/wire';
import { connect } from 'node:net';
import { once } from 'node:events';

async function cancelCount(metrics: GatewayMetrics, result: string): Promise<number> {
  const metric = await metrics.registry.getSingleMetric(MetricName.CancelRequests)?.get();
  return metric?.values.find((v) => v.labels.result === result)?.value ?? 0;
}

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
  const gatewayWithRedis = async (metrics = createMetrics()): Promise<Gateway> => {
    const connection = new Redis(redis.url, { enableOfflineQueue: false, maxRetriesPerRequest: 0, commandTimeout: 500 });
    connection.on('error', () => {});
    // A short TTL: refreshed every 200 ms, so the test sees a key written back after Redis restarts.
    const cancelStore = new RedisCancelKeyStore({ redis: connection, local: new MemoryCancelKeyStore(), ttlMs: 600 });
    const gateway = await createTestGateway(pki, await TenantsFileDirectory.open(tenantsFile), { cancelStore, metrics });
    t.after(() => gateway.close());
    return gateway;
  };
  const secondMetrics = createMetrics();
  const [first, second] = [await gatewayWithRedis(), await gatewayWithRedis(secondMetrics)];
  const inspector = new Redis(redis.url);
  inspector.on('error', () => {});
  t.after(() => inspector.disconnect());

  const client = await connectPg(t, first!, pki, { servername: tenantHost('acme'), database: 'app' });
  const { processID, secretKey } = client as unknown as { processID: number; secretKey: number };
  assert.equal((await inspector.keys('tenantgate:cancel:*')).length, 1, 'the key is in Redis');
  /** A pg_sleep on the session, cancelled by a CancelRequest sent to `via`. */
  const cancelThrough = (via: Gateway): Promise<void> => cancelSleep(client, via, processID, secretKey);
  /**
   * A pg_sleep on `session`, cancelled through `via`. The cancel is sent again every 200 ms while
   * the query runs: just after Redis restarts, `via`'s own Redis connection may still be
   * reconnecting, and a lookup then finds nothing (the cancel is dropped, as PostgreSQL drops an
   * unknown key). The query must end cancelled, not run its 30 s.
   */
  async function cancelSleep(session: typeof client, via: Gateway, pid: number, key: number): Promise<void> {
    const sleeping = session.query('select pg_sleep(30)');
    let settled = false;
    void sleeping.then(
      () => (settled = true),
      () => (settled = true),
    );
    await waitForActiveSleep(backend);
    for (let i = 0; i < 25 && !settled; i++) {
      await sendCancel(via, pid, key);
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
    await assert.rejects(sleeping, (error: { code?: string }) => error.code === '57014');
  }
  await cancelThrough(second!);

  // Redis gone: the gateway that holds the session still cancels from its own memory, and a
  // session that starts meanwhile gets its key into Redis once Redis is back.
  await redis.kill();
  // The second gateway does not hold the key and cannot ask Redis: counted as such, not as unknown.
  for (let i = 0; i < 50 && (await cancelCount(secondMetrics, 'store_unavailable')) === 0; i++) {
    await sendCancel(second!, processID, secretKey);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  assert.ok((await cancelCount(secondMetrics, 'store_unavailable')) > 0, 'the miss while Redis is down is counted');
  await cancelThrough(first!);
  const during = await connectPg(t, first!, pki, { servername: tenantHost('acme'), database: 'app' });
  await redis.restart();

  // Redis restarted empty: the holder writes its key back at its next refresh (every TTL/3).
  for (let i = 0; i < 100 && (await inspector.keys('tenantgate:cancel:*').catch(() => [])).length === 0; i++) {
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  for (let i = 0; i < 100 && (await inspector.keys('tenantgate:cancel:*')).length < 2; i++) {
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  assert.equal((await inspector.keys('tenantgate:cancel:*')).length, 2, 'the key is back in Redis, and the one made without Redis is in');
  await cancelThrough(second!);
  const duringKey = during as unknown as { processID: number; secretKey: number };
  await cancelSleep(during, second!, duringKey.processID, duringKey.secretKey);
  await Promise.all([client.end(), during.end()]);

  // Protocol 3.2: a 32-byte key, through Redis as well.
  const socket = await upgradeToTls(t, first!, pki, tenantHost('acme'));
  const messages = serverMessages(socket);
  const startup = serializeStartupMessage({
    minorVersion: 2,
    parameters: new Map([
      ['user', 'app'],
      ['database', 'app'],
    ]),
  });
  const { key } = await scramLogin(socket, messages, startup);
  assert.equal(key?.secretKey.length, 32, 'a protocol 3.2 key');
  socket.write(queryMessage('select pg_sleep(30)'));
  await waitForActiveSleep(backend);
  const canceller = connect(second!.address.port, '127.0.0.1');
  await once(canceller, 'connect');
  canceller.end(serializeCancelRequest(key!.processId, key!.secretKey));
  for (let message = await nextMessage(messages); ; message = await nextMessage(messages)) {
    assert.ok(message, 'the connection closed before the query ended');
    assert.notEqual(message.type, 'Z', 'the query ended without being cancelled');
    if (message.type === 'E') {
      assert.equal(errorFields(message).code, '57014');
      break;
    }
  }
  socket.destroy();
  await new Promise((resolve) => setTimeout(resolve, 200));
  assert.deepEqual(await inspector.keys('tenantgate:cancel:*'), [], 'no key outlives its session');
});
