// The readiness monitor against real parts: ControlPlaneProbe towards a port where nothing
// listens (the control plane down) and a real redis-server that is killed and restarted.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { Redis } from 'ioredis';
import { ControlPlaneProbe } from '@tenantgate/tenancy';
import { getFreePort, startRedis } from '@tenantgate/testing';
import { ReadinessMonitor } from './readiness.ts';
import { quietLogger } from '../testing/quiet-logger.ts';

async function downControlPlane(): Promise<ControlPlaneProbe> {
  return new ControlPlaneProbe({ url: `http://127.0.0.1:${await getFreePort()}/`, token: 't', timeoutMs: 1000 });
}

test('the control plane down and no Redis: not ready, said once however many checks', async (t) => {
  const { logger, lines } = quietLogger();
  const monitor = new ReadinessMonitor({ logger, probe: await downControlPlane() });
  t.after(() => monitor.close());
  assert.equal(monitor.state.ready, false, 'not ready before the first check has finished');
  for (let i = 0; i < 3; i++) await monitor.check();
  assert.equal(monitor.state.ready, false);
  assert.match(
    monitor.state.reasons[0]?.reason ?? '',
    /^no tenant source answers: the control plane \(no answer \(ECONNREFUSED\)\) and no REDIS_URL$/,
  );
  assert.equal(lines().filter((line) => String(line.msg).startsWith('not ready: no tenant source answers')).length, 1);
});

test('the control plane down with Redis up is ready (Redis holds the routes); Redis down too is not, and back is', async (t) => {
  const redisServer = await startRedis();
  t.after(() => redisServer.stop());
  const redis = new Redis(redisServer.url, { enableOfflineQueue: false, maxRetriesPerRequest: 0 });
  redis.on('error', () => {});
  const { logger, lines } = quietLogger();
  const monitor = new ReadinessMonitor({ logger, probe: await downControlPlane(), redis });
  t.after(() => monitor.close());
  await once(redis, 'ready');
  assert.equal((await monitor.check()).ready, true);

  await redisServer.kill();
  const down = await monitor.check();
  assert.equal(down.ready, false);
  assert.match(down.reasons[0]?.reason ?? '', /nor Redis$/);

  await redisServer.restart();
  for (let i = 0; i < 100 && !(await monitor.check()).ready; i++) await new Promise((resolve) => setTimeout(resolve, 50));
  assert.equal(monitor.state.ready, true);
  assert.deepEqual(
    lines().map((line) => String(line.msg).replace(/:.*/, '')),
    ['ready', 'not ready', 'ready'],
  );
});
