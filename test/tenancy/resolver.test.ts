// The tenant resolver against a real redis-server and a local HTTP server playing the control
// plane (control-plane-double.ts), for the faults a real control plane will not produce on
// demand: hit and miss per tier, single flight, negative caching, retries, stale-if-error, a
// dead and restarted Redis, invalidations (and the race of a fill with a write), and a close
// that leaves nothing running. Memory TTLs run on a clock the tests move; nothing asserts on
// durations.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import { test, type TestContext } from 'node:test';
import { Redis } from 'ioredis';
import {
  ControlPlaneCircuitOpenError,
  ControlPlaneSlowError,
  ControlPlaneStatusError,
  ControlPlaneTransportError,
  createTenantResolver,
  routeKey,
  TenantDirectoryUnavailableError,
  TenantResolverClosedError,
  type ControlPlaneRequestEvent,
  type InvalidationEvent,
  type RedisConnectionEvent,
  type RedisErrorEvent,
  type StaleServedEvent,
  type TenantResolution,
  type TenantResolver,
  type TenantResolverOptions,
  type TenantRoute,
} from '@tenantgate/tenancy';
import { startRedis, type RedisServer } from '@tenantgate/testing';
import { applyWrite, GATEWAY_TOKEN, startControlPlaneDouble, type ControlPlaneDouble } from './control-plane-double.ts';

const SCRAM_SECRET = `SCRAM-SHA-256$4096:c2FsdHNhbHRzYWx0$${'A'.repeat(43)}=:${'B'.repeat(43)}=`;
const MEMORY_TTL_MS = 5_000;
const NEGATIVE_TTL_MS = 2_000;
const STALE_MAX_AGE_MS = 600_000;
/** Only to turn a hang into a failure; no test waits this long when it passes. */
const PATIENCE_MS = 20_000;

function route(id: string, version = 1): TenantRoute {
  return {
    id,
    status: 'active',
    backend: { host: '10.0.3.17', port: 5432 },
    authMode: 'gateway',
    userRewrite: {},
    roles: [{ name: 'app', scramSecret: SCRAM_SECRET }],
    allowedCidrs: ['0.0.0.0/0'],
    limits: { maxConnections: 100, connectsPerSecond: 50 },
    replication: 'none',
    version,
    createdAt: '2025-01-01T00:00:00.000Z',
    updatedAt: '2025-01-01T00:00:00.000Z',
  };
}

/** Everything the resolver reported, in order. */
function recorder() {
  const log = {
    cache: [] as string[],
    controlPlane: [] as ControlPlaneRequestEvent[],
    redis: [] as RedisConnectionEvent[],
    redisErrors: [] as RedisErrorEvent[],
    stale: [] as StaleServedEvent[],
    invalidations: [] as InvalidationEvent[],
  };
  const observer = {
    cacheRequest: (tier: string, result: string, tenantId: string) => log.cache.push(`${tier} ${result} ${tenantId}`),
    controlPlaneRequest: (event: ControlPlaneRequestEvent) => log.controlPlane.push(event),
    redisConnection: (event: RedisConnectionEvent) => log.redis.push(event),
    redisError: (event: RedisErrorEvent) => log.redisErrors.push(event),
    staleServed: (event: StaleServedEvent) => log.stale.push(event),
    invalidation: (event: InvalidationEvent) => log.invalidations.push(event),
  };
  return { log, observer };
}

interface Setup {
  readonly resolver: TenantResolver;
  readonly log: ReturnType<typeof recorder>['log'];
  readonly clock: { now: number };
  /** Cache events since the last call. */
  cacheSince(): string[];
}

function makeResolver(
  t: TestContext,
  cp: ControlPlaneDouble,
  redis: RedisServer | undefined,
  options: Partial<TenantResolverOptions> = {},
): Setup {
  const { log, observer } = recorder();
  const clock = { now: 0 };
  const resolver = createTenantResolver({
    controlPlaneUrl: cp.url,
    controlPlaneToken: GATEWAY_TOKEN,
    redisUrl: redis?.url,
    memoryTtlMs: MEMORY_TTL_MS,
    negativeTtlMs: NEGATIVE_TTL_MS,
    staleMaxAgeMs: STALE_MAX_AGE_MS,
    retryBaseDelayMs: 1,
    retryMaxDelayMs: 10,
    // Generous, so a loaded machine does not turn a slow reply into a Redis miss.
    redisCommandTimeoutMs: 2_000,
    redisReconnectMaxDelayMs: 100,
    // Off unless a test is about them: the stale-if-error tests below watch each step in order.
    staleWhileRevalidateMs: 0,
    breakerFailures: 0,
    observer,
    now: () => clock.now,
    ...options,
  });
  t.after(() => resolver.close());
  let seen = 0;
  return {
    resolver,
    log,
    clock,
    cacheSince: () => {
      const events = log.cache.slice(seen);
      seen = log.cache.length;
      return events;
    },
  };
}

async function controlPlane(t: TestContext): Promise<ControlPlaneDouble> {
  const cp = await startControlPlaneDouble();
  t.after(() => cp.stop());
  return cp;
}

async function redisServer(t: TestContext): Promise<RedisServer> {
  const redis = await startRedis();
  t.after(() => redis.stop());
  return redis;
}

/** A plain client, as the control plane (or an operator) would use. */
async function adminClient(t: TestContext, redis: RedisServer): Promise<Redis> {
  const client = new Redis(redis.url, { maxRetriesPerRequest: 1, retryStrategy: () => 50 });
  // This client sees Redis die too, in the tests that kill it; its commands say so when it matters.
  client.on('error', () => {});
  t.after(() => client.disconnect());
  if (client.status !== 'ready') await once(client, 'ready');
  return client;
}

async function eventually(what: string, check: () => boolean): Promise<void> {
  const deadline = Date.now() + PATIENCE_MS;
  while (!check()) {
    if (Date.now() > deadline) assert.fail(`gave up waiting for ${what}`);
    await sleep(10);
  }
}

function version(resolution: TenantResolution): number | undefined {
  return resolution.kind === 'found' ? resolution.route.version : undefined;
}

test('a route comes from the control plane once, then from memory, then from Redis after the memory TTL', async (t) => {
  const [cp, redis] = await Promise.all([controlPlane(t), redisServer(t)]);
  cp.routes.set('acme', route('acme', 3));
  const { resolver, clock, cacheSince } = makeResolver(t, cp, redis);
  await resolver.ready();
  cacheSince();

  assert.deepEqual(await resolver.resolve('acme'), { kind: 'found', route: route('acme', 3) });
  assert.deepEqual(cacheSince(), ['memory miss acme', 'redis miss acme', 'control_plane hit acme']);

  assert.equal(version(await resolver.resolve('acme')), 3);
  assert.deepEqual(cacheSince(), ['memory hit acme']);

  clock.now += MEMORY_TTL_MS;
  assert.equal(version(await resolver.resolve('acme')), 3);
  assert.deepEqual(cacheSince(), ['memory miss acme', 'redis hit acme']);
  assert.equal(cp.count('acme'), 1);

  const admin = await adminClient(t, redis);
  assert.deepEqual(JSON.parse((await admin.get(routeKey('acme'))) ?? 'null'), { kind: 'found', route: route('acme', 3) });
  const ttl = await admin.pttl(routeKey('acme'));
  assert.ok(ttl > 0 && ttl <= 300_000, `PTTL ${ttl}`);
});

test('the route is shared and frozen: a caller cannot change what the next one gets', async (t) => {
  const cp = await controlPlane(t);
  cp.routes.set('acme', route('acme'));
  const { resolver } = makeResolver(t, cp, undefined);
  const first = await resolver.resolve('acme');
  assert.equal(first.kind, 'found');
  assert.throws(() => {
    (first.route.backend as { host: string }).host = 'evil.example';
  }, TypeError);
  assert.deepEqual(await resolver.resolve('acme'), { kind: 'found', route: route('acme') });
});

test('another gateway gets the route from Redis, without asking the control plane', async (t) => {
  const [cp, redis] = await Promise.all([controlPlane(t), redisServer(t)]);
  cp.routes.set('acme', route('acme'));
  const first = makeResolver(t, cp, redis);
  const second = makeResolver(t, cp, redis);
  await Promise.all([first.resolver.ready(), second.resolver.ready()]);
  await first.resolver.resolve('acme');
  second.cacheSince();
  assert.deepEqual(await second.resolver.resolve('acme'), { kind: 'found', route: route('acme') });
  assert.deepEqual(second.cacheSince(), ['memory miss acme', 'redis hit acme']);
  assert.equal(cp.count('acme'), 1);
});

test('500 concurrent resolves of an uncached tenant make exactly one HTTP request', async (t) => {
  const [cp, redis] = await Promise.all([controlPlane(t), redisServer(t)]);
  cp.routes.set('acme', route('acme', 7));
  const { resolver, log } = makeResolver(t, cp, redis);
  await resolver.ready();
  const results = await Promise.all(Array.from({ length: 500 }, () => resolver.resolve('acme')));
  assert.equal(cp.count('acme'), 1);
  assert.ok(results.every((r) => version(r) === 7));
  assert.equal(log.cache.filter((e) => e === 'redis miss acme').length, 1);
});

test('a caller that gives up leaves the shared request running for the others', async (t) => {
  const cp = await controlPlane(t);
  cp.routes.set('acme', route('acme'));
  const { resolver } = makeResolver(t, cp, undefined);
  const held = cp.holdNext();
  const impatient = new AbortController();
  const leaving = resolver.resolve('acme', impatient.signal);
  const staying = resolver.resolve('acme');
  await held.arrived;
  const reason = new Error('client hung up');
  impatient.abort(reason);
  await assert.rejects(leaving, (error) => error === reason);
  held.release();
  assert.equal(version(await staying), 1);
  assert.equal(cp.count('acme'), 1);
  await assert.rejects(resolver.resolve('acme', AbortSignal.abort(reason)), (error) => error === reason);
});

test('an unknown tenant (404) is cached negatively, in memory and in Redis, for the negative TTL', async (t) => {
  const [cp, redis] = await Promise.all([controlPlane(t), redisServer(t)]);
  const gateway = makeResolver(t, cp, redis);
  const other = makeResolver(t, cp, redis);
  await Promise.all([gateway.resolver.ready(), other.resolver.ready()]);
  gateway.cacheSince();
  other.cacheSince();

  assert.deepEqual(await gateway.resolver.resolve('ghost'), { kind: 'unknown' });
  assert.deepEqual(gateway.cacheSince(), ['memory miss ghost', 'redis miss ghost', 'control_plane negative_hit ghost']);
  assert.deepEqual(await gateway.resolver.resolve('ghost'), { kind: 'unknown' });
  assert.deepEqual(gateway.cacheSince(), ['memory negative_hit ghost']);
  assert.deepEqual(await other.resolver.resolve('ghost'), { kind: 'unknown' });
  assert.deepEqual(other.cacheSince(), ['memory miss ghost', 'redis negative_hit ghost']);
  assert.equal(cp.count('ghost'), 1);

  const admin = await adminClient(t, redis);
  assert.equal(await admin.get(routeKey('ghost')), '{"kind":"unknown"}');
  const ttl = await admin.pttl(routeKey('ghost'));
  assert.ok(ttl > 0 && ttl <= NEGATIVE_TTL_MS, `PTTL ${ttl}`);

  gateway.clock.now += NEGATIVE_TTL_MS;
  await admin.del(routeKey('ghost'));
  assert.deepEqual(await gateway.resolver.resolve('ghost'), { kind: 'unknown' });
  assert.equal(cp.count('ghost'), 2);
});

test('an id no tenant can have is unknown without asking anyone', async (t) => {
  const cp = await controlPlane(t);
  const { resolver, log } = makeResolver(t, cp, undefined);
  for (const id of ['', 'ACME', 'a/b', 'x'.repeat(64), '../v1/tenants'])
    assert.deepEqual(await resolver.resolve(id), { kind: 'unknown' }, id);
  assert.deepEqual(cp.requests, []);
  assert.deepEqual(log.cache, []);
});

test('creating a tenant drops the negative entries at once, on every gateway', async (t) => {
  const [cp, redis] = await Promise.all([controlPlane(t), redisServer(t)]);
  const gateways = [makeResolver(t, cp, redis), makeResolver(t, cp, redis)];
  await Promise.all(gateways.map((g) => g.resolver.ready()));
  for (const g of gateways) assert.deepEqual(await g.resolver.resolve('newco'), { kind: 'unknown' });

  cp.routes.set('newco', route('newco', 5));
  await applyWrite(await adminClient(t, redis), 'newco', { version: 5 });
  for (const g of gateways) await eventually('the invalidation', () => g.log.invalidations.some((e) => e.tenantId === 'newco'));
  for (const g of gateways) assert.equal(version(await g.resolver.resolve('newco')), 5);
  assert.equal(cp.count('newco'), 2);
});

test('a deleted tenant becomes unknown at once, and is not served stale', async (t) => {
  const [cp, redis] = await Promise.all([controlPlane(t), redisServer(t)]);
  cp.routes.set('acme', route('acme', 1));
  const { resolver, log, clock } = makeResolver(t, cp, redis);
  await resolver.ready();
  assert.equal(version(await resolver.resolve('acme')), 1);

  cp.routes.delete('acme');
  await applyWrite(await adminClient(t, redis), 'acme', { version: 2, deleted: true });
  await eventually('the invalidation', () => log.invalidations.some((e) => e.tenantId === 'acme' && e.version === null));
  assert.deepEqual(await resolver.resolve('acme'), { kind: 'unknown' });

  // Once the negative entry expires, a failing control plane has no old route to fall back on.
  clock.now += NEGATIVE_TTL_MS;
  cp.failAlways({ kind: 'status', status: 503 });
  await assert.rejects(resolver.resolve('acme'), TenantDirectoryUnavailableError);
});

test('a transport failure (reset) is retried, then the route comes', async (t) => {
  const cp = await controlPlane(t);
  cp.routes.set('acme', route('acme'));
  const { resolver, log } = makeResolver(t, cp, undefined);
  cp.failNext({ kind: 'reset' });
  assert.equal(version(await resolver.resolve('acme')), 1);
  assert.equal(cp.count('acme'), 2);
  assert.deepEqual(
    log.controlPlane.map((e) => [e.attempt, e.status]),
    [
      [0, 'error'],
      [1, 200],
    ],
  );
  assert.ok(log.controlPlane[0]?.error instanceof ControlPlaneTransportError);
});

test('no answer within the request timeout is retried too', async (t) => {
  const cp = await controlPlane(t);
  cp.routes.set('acme', route('acme'));
  const { resolver, log } = makeResolver(t, cp, undefined, { requestTimeoutMs: 500 });
  cp.failNext({ kind: 'hang' });
  assert.equal(version(await resolver.resolve('acme')), 1);
  assert.equal(cp.count('acme'), 2);
  assert.match(log.controlPlane[0]?.error?.message ?? '', /no answer within 500 ms/);
});

test('an HTTP 500 is not retried: the unavailable error, with the cause and no address', async (t) => {
  const cp = await controlPlane(t);
  const { resolver, log } = makeResolver(t, cp, undefined);
  cp.failNext({ kind: 'status', status: 500 });
  await assert.rejects(resolver.resolve('acme'), (error: Error) => {
    assert.ok(error instanceof TenantDirectoryUnavailableError);
    assert.equal(error.code, 'TG_ERR_TENANT_DIRECTORY_UNREACHABLE');
    assert.ok(error.cause instanceof ControlPlaneStatusError && error.cause.statusCode === 500);
    assert.ok(!error.message.includes('127.0.0.1'), error.message);
    return true;
  });
  assert.equal(cp.count('acme'), 1);
  assert.deepEqual(
    log.controlPlane.map((e) => e.status),
    [500],
  );
});

test('a refused token is an error, not an unknown tenant', async (t) => {
  const cp = await controlPlane(t);
  cp.routes.set('acme', route('acme'));
  const { resolver } = makeResolver(t, cp, undefined, { controlPlaneToken: 'wrong-token' });
  await assert.rejects(
    resolver.resolve('acme'),
    (error: Error) =>
      error instanceof TenantDirectoryUnavailableError && error.cause instanceof ControlPlaneStatusError && error.cause.statusCode === 401,
  );
});

test('control plane stopped: cached tenants are served stale, others get the unavailable error', async (t) => {
  const cp = await controlPlane(t);
  cp.routes.set('acme', route('acme', 4));
  cp.routes.set('beta', route('beta'));
  const { resolver, log, clock, cacheSince } = makeResolver(t, cp, undefined);
  await resolver.resolve('acme');
  await cp.stop();
  clock.now += MEMORY_TTL_MS + 1_000;
  cacheSince();

  assert.deepEqual(await resolver.resolve('acme'), { kind: 'found', route: route('acme', 4), stale: true });
  assert.deepEqual(cacheSince(), ['memory miss acme', 'control_plane error acme', 'memory stale acme']);
  assert.equal(log.stale.length, 1);
  assert.equal(log.stale[0]?.tenantId, 'acme');
  assert.equal(log.stale[0]?.ageSeconds, (MEMORY_TTL_MS + 1_000) / 1000);
  assert.ok(log.stale[0]?.error instanceof ControlPlaneTransportError);

  await assert.rejects(resolver.resolve('beta'), (error: Error) => {
    assert.ok(error instanceof TenantDirectoryUnavailableError);
    assert.ok(error.cause instanceof ControlPlaneTransportError);
    assert.ok(!error.message.includes('127.0.0.1'));
    return true;
  });

  clock.now += STALE_MAX_AGE_MS;
  await assert.rejects(resolver.resolve('acme'), TenantDirectoryUnavailableError);

  await cp.start();
  assert.deepEqual(await resolver.resolve('acme'), { kind: 'found', route: route('acme', 4) });
});

test('Redis and the control plane both down: stale routes still served', async (t) => {
  const [cp, redis] = await Promise.all([controlPlane(t), redisServer(t)]);
  cp.routes.set('acme', route('acme'));
  const { resolver, clock, cacheSince } = makeResolver(t, cp, redis);
  await resolver.ready();
  await resolver.resolve('acme');
  await Promise.all([redis.kill(), cp.stop()]);
  clock.now += MEMORY_TTL_MS;
  cacheSince();
  const answer = await resolver.resolve('acme');
  assert.equal(answer.kind === 'found' && answer.stale, true);
  assert.deepEqual(cacheSince(), ['memory miss acme', 'redis error acme', 'control_plane error acme', 'memory stale acme']);
});

test('Redis killed: resolves go to the control plane; Redis restarted: used again', async (t) => {
  const [cp, redis] = await Promise.all([controlPlane(t), redisServer(t)]);
  for (const id of ['a', 'b', 'c']) cp.routes.set(id, route(id));
  const { resolver, log, cacheSince } = makeResolver(t, cp, redis);
  await resolver.ready();
  await resolver.resolve('a');

  await redis.kill();
  await eventually('Redis reported down', () => log.redis.some((e) => e.role === 'commands' && e.state === 'down'));
  cacheSince();
  assert.equal(version(await resolver.resolve('b')), 1);
  assert.deepEqual(cacheSince(), ['memory miss b', 'redis error b', 'control_plane hit b']);
  // The outage was reported once, as a state change; no command was tried while it lasted.
  assert.deepEqual(log.redisErrors, []);

  await redis.restart();
  await resolver.ready();
  assert.deepEqual(
    log.redis.filter((e) => e.role === 'commands').map((e) => e.state),
    ['ready', 'down', 'ready'],
  );
  cacheSince();
  assert.equal(version(await resolver.resolve('c')), 1);
  assert.deepEqual(cacheSince(), ['memory miss c', 'redis miss c', 'control_plane hit c']);
  const admin = await adminClient(t, redis);
  assert.notEqual(await admin.get(routeKey('c')), null);
});

test('a gateway started while Redis is down resolves through the control plane', async (t) => {
  const [cp, redis] = await Promise.all([controlPlane(t), redisServer(t)]);
  cp.routes.set('acme', route('acme'));
  await redis.kill();
  const { resolver, log } = makeResolver(t, cp, redis);
  assert.equal(version(await resolver.resolve('acme')), 1);
  await eventually('Redis reported down', () => log.redis.some((e) => e.state === 'down'));
  await redis.restart();
  await resolver.ready();
});

test('garbage under a route key counts as a Redis error; the control plane answers and the key is repaired', async (t) => {
  const [cp, redis] = await Promise.all([controlPlane(t), redisServer(t)]);
  cp.routes.set('acme', route('acme', 2));
  const { resolver, log, cacheSince } = makeResolver(t, cp, redis);
  await resolver.ready();
  const admin = await adminClient(t, redis);
  await admin.set(routeKey('acme'), '{"kind":"found","route":{"id":"acme"}}');
  cacheSince();
  assert.equal(version(await resolver.resolve('acme')), 2);
  assert.deepEqual(cacheSince(), ['memory miss acme', 'redis error acme', 'control_plane hit acme']);
  assert.equal(log.redisErrors[0]?.error.constructor.name, 'CachedRouteInvalidError');
  assert.equal(JSON.parse((await admin.get(routeKey('acme'))) ?? '{}').route.version, 2);
});

test('an invalidation drops the tenant from memory at once', async (t) => {
  const [cp, redis] = await Promise.all([controlPlane(t), redisServer(t)]);
  cp.routes.set('acme', route('acme', 1));
  const { resolver, log } = makeResolver(t, cp, redis);
  await resolver.ready();
  await resolver.resolve('acme');
  cp.routes.set('acme', route('acme', 2));
  await applyWrite(await adminClient(t, redis), 'acme', { version: 2 });
  await eventually('the invalidation', () => log.invalidations.some((e) => e.tenantId === 'acme' && e.version === 2));
  assert.equal(version(await resolver.resolve('acme')), 2);
  assert.equal(cp.count('acme'), 2);
});

test('the invalidation race: a fill that started before a write caches its old value nowhere', async (t) => {
  const [cp, redis] = await Promise.all([controlPlane(t), redisServer(t)]);
  cp.routes.set('acme', route('acme', 1));
  const { resolver, log } = makeResolver(t, cp, redis);
  await resolver.ready();
  const admin = await adminClient(t, redis);

  const held = cp.holdNext();
  const filling = resolver.resolve('acme');
  await held.arrived;
  // The write commits while the old answer is on its way.
  cp.routes.set('acme', route('acme', 2));
  await applyWrite(admin, 'acme', { version: 2 });
  await eventually('the invalidation', () => log.invalidations.some((e) => e.tenantId === 'acme'));
  // A caller arriving now must not join the flight that carries the old answer.
  const after = resolver.resolve('acme');
  held.release();

  assert.equal(version(await filling), 1);
  assert.equal(version(await after), 2);
  assert.equal(JSON.parse((await admin.get(routeKey('acme'))) ?? '{}').route?.version, 2);
  assert.equal(version(await resolver.resolve('acme')), 2);
  assert.equal(cp.count('acme'), 2);
});

test('the invalidation race without the message: the floor refuses the old value, and memory does not keep it', async (t) => {
  const [cp, redis] = await Promise.all([controlPlane(t), redisServer(t)]);
  cp.routes.set('acme', route('acme', 1));
  const { resolver } = makeResolver(t, cp, redis);
  await resolver.ready();
  const admin = await adminClient(t, redis);

  const held = cp.holdNext();
  const filling = resolver.resolve('acme');
  await held.arrived;
  cp.routes.set('acme', route('acme', 2));
  await applyWrite(admin, 'acme', { version: 2, publish: false });
  held.release();

  assert.equal(version(await filling), 1);
  assert.equal(await admin.get(routeKey('acme')), null);
  assert.equal(version(await resolver.resolve('acme')), 2);
  assert.equal(cp.count('acme'), 2);
  assert.equal(JSON.parse((await admin.get(routeKey('acme'))) ?? '{}').route?.version, 2);
});

test('when the subscriber reconnects, memory is dropped (invalidations may have been missed)', async (t) => {
  const [cp, redis] = await Promise.all([controlPlane(t), redisServer(t)]);
  cp.routes.set('acme', route('acme', 1));
  const { resolver, log } = makeResolver(t, cp, redis);
  await resolver.ready();
  await resolver.resolve('acme');

  // A write whose message this gateway never hears.
  const admin = await adminClient(t, redis);
  cp.routes.set('acme', route('acme', 2));
  await applyWrite(admin, 'acme', { version: 2, publish: false });
  assert.equal(version(await resolver.resolve('acme')), 1, 'memory still holds the old route');

  const resubscriptions = log.invalidations.filter((e) => e.tenantId === null).length;
  await admin.call('CLIENT', 'KILL', 'TYPE', 'pubsub');
  await eventually('the subscriber to come back', () => log.invalidations.filter((e) => e.tenantId === null).length > resubscriptions);
  assert.deepEqual(
    log.redis.filter((e) => e.role === 'subscriber').map((e) => e.state),
    ['ready', 'down', 'ready'],
  );
  assert.equal(version(await resolver.resolve('acme')), 2);
});

test('a message on the channel that is not an invalidation is reported and ignored', async (t) => {
  const [cp, redis] = await Promise.all([controlPlane(t), redisServer(t)]);
  cp.routes.set('acme', route('acme'));
  const { resolver, log } = makeResolver(t, cp, redis);
  await resolver.ready();
  await resolver.resolve('acme');
  const admin = await adminClient(t, redis);
  await admin.publish('tenantgate:invalidate', 'acme');
  await eventually('the report', () => log.redisErrors.some((e) => e.operation === 'message'));
  await resolver.resolve('acme');
  assert.equal(cp.count('acme'), 1);
});

test('close() ends requests in flight; resolve() after close is refused', async (t) => {
  const [cp, redis] = await Promise.all([controlPlane(t), redisServer(t)]);
  const { resolver } = makeResolver(t, cp, redis);
  await resolver.ready();
  cp.failFor('slow', { kind: 'hang' });
  const pending = resolver.resolve('slow');
  const waiting = resolver.resolve('slow');
  const refused = [assert.rejects(pending, TenantResolverClosedError), assert.rejects(waiting, TenantResolverClosedError)];
  await eventually('the request for slow', () => cp.count('slow') === 1);
  await Promise.all([resolver.close(), resolver.close()]);
  await Promise.all(refused);
  await assert.rejects(resolver.resolve('acme'), TenantResolverClosedError);
  await assert.rejects(resolver.ready(), TenantResolverClosedError);
});

test('after close() nothing keeps the process alive: it exits by itself', async (t) => {
  const [cp, redis] = await Promise.all([controlPlane(t), redisServer(t)]);
  cp.routes.set('acme', route('acme'));
  cp.failFor('slow', { kind: 'hang' });
  const child = spawn(process.execPath, ['--conditions=@tenantgate/source', fileURLToPath(new URL('close-child.ts', import.meta.url))], {
    env: { ...process.env, TG_CONTROL_PLANE_URL: cp.url, TG_CONTROL_PLANE_TOKEN: GATEWAY_TOKEN, TG_REDIS_URL: redis.url },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const killer = setTimeout(() => child.kill('SIGKILL'), PATIENCE_MS * 3);
  t.after(() => {
    clearTimeout(killer);
    child.kill('SIGKILL');
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const [code, signal] = (await once(child, 'exit')) as [number | null, NodeJS.Signals | null];
  assert.equal(signal, null, `the child did not exit by itself; it printed ${stdout} ${stderr}`);
  assert.equal(code, 0, stderr);
  const report = JSON.parse(stdout) as { found: string; unknown: string; slow: string; resources: string[] };
  assert.deepEqual(
    { ...report, resources: undefined },
    { found: 'found', unknown: 'unknown', slow: 'TG_ERR_TENANT_RESOLVER_CLOSED', resources: undefined },
  );
  // The child's stdout and stderr are pipes to this process; anything else is a leak.
  const left = report.resources.filter((resource) => resource !== 'PipeWrap');
  assert.deepEqual(left, [], 'what keeps the event loop alive after close()');
});

test('a slow control plane: an expired route is served after the stale-while-revalidate deadline, and the refresh fills memory when it comes', async (t) => {
  const cp = await controlPlane(t);
  cp.routes.set('acme', route('acme', 4));
  const { resolver, log, clock, cacheSince } = makeResolver(t, cp, undefined, { staleWhileRevalidateMs: 20 });
  await resolver.resolve('acme');
  clock.now += MEMORY_TTL_MS + 1;
  cp.routes.set('acme', route('acme', 5));
  const held = cp.holdNext();
  cacheSince();

  // The refresh is held at the control plane; the lookup does not wait for it.
  assert.deepEqual(await resolver.resolve('acme'), { kind: 'found', route: route('acme', 4), stale: true });
  await held.arrived;
  assert.deepEqual(cacheSince(), ['memory miss acme', 'memory stale acme']);
  assert.ok(log.stale.at(-1)?.error instanceof ControlPlaneSlowError);

  held.release();
  await eventually('the refresh to reach memory', () => cacheSince().includes('control_plane hit acme'));
  assert.deepEqual(await resolver.resolve('acme'), { kind: 'found', route: route('acme', 5) });
  assert.equal(cp.count('acme'), 2);
});

test('a fast control plane answers an expired route before the deadline: no stale route', async (t) => {
  const cp = await controlPlane(t);
  cp.routes.set('acme', route('acme', 4));
  // A deadline no request on this machine takes: the fresh answer always comes first.
  const { resolver, clock } = makeResolver(t, cp, undefined, { staleWhileRevalidateMs: 60_000 });
  await resolver.resolve('acme');
  clock.now += MEMORY_TTL_MS + 1;
  cp.routes.set('acme', route('acme', 5));
  assert.deepEqual(await resolver.resolve('acme'), { kind: 'found', route: route('acme', 5) });
});

test('after failures in a row the breaker stops asking the control plane; after the open time one probe closes it again', async (t) => {
  const cp = await controlPlane(t);
  cp.routes.set('acme', route('acme'));
  const { resolver, clock } = makeResolver(t, cp, undefined, { breakerFailures: 2, breakerOpenMs: 1_000 });
  cp.failAlways({ kind: 'status', status: 503 });
  for (const id of ['one', 'two']) {
    await assert.rejects(
      resolver.resolve(id),
      (error: Error) => error instanceof TenantDirectoryUnavailableError && error.cause instanceof ControlPlaneStatusError,
    );
  }
  const asked = cp.requests.length;
  await assert.rejects(
    resolver.resolve('three'),
    (error: Error) => error instanceof TenantDirectoryUnavailableError && error.cause instanceof ControlPlaneCircuitOpenError,
  );
  assert.equal(cp.requests.length, asked, 'no request while the breaker is open');

  cp.failAlways(undefined);
  clock.now += 1_000;
  assert.deepEqual(await resolver.resolve('acme'), { kind: 'found', route: route('acme') });
  assert.equal(cp.requests.length, asked + 1, 'the probe');
  assert.equal((await resolver.resolve('nobody')).kind, 'unknown', 'closed again: requests go out');
  assert.equal(cp.requests.length, asked + 2);
});
