// Cancel routing against a real PostgreSQL 15 (pg_hba `cert`) and a stand-in backend that records
// the CancelRequest it receives: the gateway's keys, their translation to the backend's, unknown
// keys, the per-address rate limit, and the metric.
import assert from 'node:assert/strict';
import { test, type TestContext } from 'node:test';
import { createTestPki, startPostgres, type PostgresServer } from '@tenantgate/testing';
import { serializeCancelRequest } from '@tenantgate/wire';
import { openBackend, startBackendSession } from '../backend/index.ts';
import { BackendUnreachableError } from '../errors.ts';
import { BackendTlsContexts } from '../backend/index.ts';
import {
  CANCEL_KEY_LENGTH_V3_0,
  CANCEL_KEY_LENGTH_V3_2,
  CancelRegistry,
  CancelStoreUnavailable,
  MemoryCancelKeyStore,
  cancelKeyLength,
  type CancelForwardOptions,
  type CancelTarget,
} from './registry.ts';
import { CancelResult, MetricName, createMetrics, type GatewayMetrics } from '../telemetry/index.ts';
import { startCancelBackend } from '../testing/cancel-backend.ts';
import { simpleQuery, terminate } from '../testing/backend-servers.ts';

const pki = await createTestPki();
const gatewayCert = await pki.client('alice');
const contexts = new BackendTlsContexts();
const secureContext = contexts.get({ caPem: pki.ca.certPem, certPem: gatewayCert.chainPem, keyPem: gatewayCert.keyPem });

const forwardOptions: CancelForwardOptions = { secureContext: () => secureContext, connectTimeoutMs: 5000 };
const CLIENT = '192.0.2.10';

function target(port: number, processId: number, secretKey: Buffer): CancelTarget {
  return { tenantId: 'acme', host: '127.0.0.1', port, serverName: 'localhost', processId, secretKey };
}

async function cancelCount(metrics: GatewayMetrics, result: CancelResult): Promise<number> {
  const metric = await metrics.registry.getSingleMetric(MetricName.CancelRequests)?.get();
  return metric?.values.find((v) => v.labels.result === result)?.value ?? 0;
}

test('a CancelRequest with the gateway key cancels the running query on a real PostgreSQL (57014)', async (t: TestContext) => {
  const db: PostgresServer = await startPostgres({
    serverCert: pki.backend.chainPem,
    serverKey: pki.backend.keyPem,
    clientCa: pki.ca.certPem,
    hba: ['hostssl all all 127.0.0.1/32 cert'],
    roles: [{ name: 'alice' }],
  });
  t.after(() => db.stop());
  const opened = await openBackend({ host: db.host, port: db.port, serverName: 'localhost', secureContext, connectTimeoutMs: 5000 });
  const session = await startBackendSession(opened, {
    parameters: new Map([
      ['user', 'alice'],
      ['database', 'postgres'],
    ]),
    auth: { kind: 'none' },
    timeoutMs: 5000,
  });
  t.after(() => session.socket.destroy());
  const backendKey = session.backendKey;
  assert.ok(backendKey !== undefined);

  const metrics = createMetrics();
  const registry = new CancelRegistry({ metrics });
  const key = await registry.register({ target: target(db.port, backendKey.processId, backendKey.secretKey), clientMinorVersion: 0 });
  // The pid NotificationResponse and pg_backend_pid() show; the secret is the gateway's own.
  assert.equal(key.processId, backendKey.processId);
  assert.notDeepEqual(key.secretKey, backendKey.secretKey);
  assert.equal(key.secretKey.length, 4);

  const canceled = assert.rejects(
    simpleQuery(session.socket, 'SELECT pg_sleep(30)', session.leftover),
    /C57014 Mcanceling statement due to user request/,
  );
  await waitForActiveQuery(db, backendKey.processId);
  const outcome = await registry.forward({ ...key, clientAddress: CLIENT }, forwardOptions);
  assert.deepEqual(outcome, { result: CancelResult.Forwarded, tenantId: 'acme' });
  await canceled;

  // Canceled, not terminated: the session is still there.
  const alive = await db.sql('SELECT state FROM pg_stat_activity WHERE pid = $1', [backendKey.processId]);
  assert.equal(alive.length, 1);
  await terminate(session.socket);
  assert.equal(await cancelCount(metrics, CancelResult.Forwarded), 1);
});

async function waitForActiveQuery(db: PostgresServer, pid: number): Promise<void> {
  for (let i = 0; i < 250; i++) {
    const rows = await db.sql("SELECT 1 FROM pg_stat_activity WHERE pid = $1 AND state = 'active'", [pid]);
    if (rows.length > 0) return;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  throw new Error(`backend ${pid} never became active`);
}

test('the backend gets its own key, whatever length the client was given', async (t) => {
  const backend = await startCancelBackend(t, pki);
  const registry = new CancelRegistry();
  const backendKey32 = Buffer.alloc(32, 0xab);
  const backendKey4 = Buffer.from([9, 8, 7, 6]);

  // A 3.0 client (4-byte key) on a 3.2 backend (32-byte key), and the other way round.
  const old = await registry.register({ target: target(backend.port, 1111, backendKey32), clientMinorVersion: 0 });
  const recent = await registry.register({ target: target(backend.port, 2222, backendKey4), clientMinorVersion: 2 });
  assert.equal(old.secretKey.length, CANCEL_KEY_LENGTH_V3_0);
  assert.equal(recent.secretKey.length, CANCEL_KEY_LENGTH_V3_2);

  assert.equal((await registry.forward({ ...old, clientAddress: CLIENT }, forwardOptions)).result, CancelResult.Forwarded);
  assert.equal((await registry.forward({ ...recent, clientAddress: CLIENT }, forwardOptions)).result, CancelResult.Forwarded);
  await backend.waitForPackets(2);
  assert.deepEqual(backend.received[0].bytes, serializeCancelRequest(1111, backendKey32));
  assert.deepEqual(backend.received[0].packet, { kind: 'CancelRequest', processId: 1111, secretKey: backendKey32 });
  assert.equal(backend.received[0].bytes.length, 12 + 32);
  assert.deepEqual(backend.received[1].packet, { kind: 'CancelRequest', processId: 2222, secretKey: backendKey4 });
  assert.equal(backend.received[1].bytes.length, 16);
  assert.match(backend.received[0].clientSubject ?? '', /CN=alice/, 'over mTLS, with the client certificate');
  await backend.waitForNoConnections();
});

test('key lengths follow the client protocol version', () => {
  assert.equal(cancelKeyLength(0), 4);
  assert.equal(cancelKeyLength(1), 4);
  assert.equal(cancelKeyLength(2), 32);
  assert.equal(cancelKeyLength(3), 32);
});

test('unknown keys are dropped without a connection to any backend', async (t) => {
  const backend = await startCancelBackend(t, pki);
  const metrics = createMetrics();
  const registry = new CancelRegistry({ metrics });
  const key = await registry.register({ target: target(backend.port, 4242, Buffer.from([1, 2, 3, 4])), clientMinorVersion: 0 });
  const flipped = Buffer.from(key.secretKey);
  flipped[3] ^= 1;
  const attempts = [
    { processId: key.processId, secretKey: flipped },
    { processId: key.processId, secretKey: Buffer.concat([key.secretKey, Buffer.alloc(28)]) },
    { processId: key.processId === 1 ? 2 : key.processId - 1, secretKey: key.secretKey },
    { processId: 4242, secretKey: Buffer.from([1, 2, 3, 4]) }, // the backend's own key means nothing here
  ];
  for (const attempt of attempts) {
    assert.deepEqual(await registry.forward({ ...attempt, clientAddress: CLIENT }, forwardOptions), { result: CancelResult.UnknownKey });
  }
  await registry.unregister(key);
  assert.deepEqual(await registry.forward({ ...key, clientAddress: CLIENT }, forwardOptions), { result: CancelResult.UnknownKey });
  assert.equal(backend.accepted(), 0);
  assert.equal(await cancelCount(metrics, CancelResult.UnknownKey), 5);
});

test("a key not held here while the fleet's store cannot be asked is counted apart from an unknown key", async () => {
  const metrics = createMetrics();
  const local = new MemoryCancelKeyStore();
  // Memory answers what it holds; for anything else the fleet's part (Redis) is down.
  const store = Object.assign(Object.create(local) as MemoryCancelKeyStore, {
    get: async (key: Parameters<MemoryCancelKeyStore['get']>[0]) => {
      const entry = await local.get(key);
      if (entry === undefined) throw new CancelStoreUnavailable();
      return entry;
    },
  });
  const registry = new CancelRegistry({ metrics, store });
  const outcome = await registry.forward({ processId: 7, secretKey: Buffer.alloc(4, 1), clientAddress: CLIENT }, forwardOptions);
  assert.equal(outcome.result, CancelResult.StoreUnavailable);
  assert.ok(outcome.error instanceof CancelStoreUnavailable);
  assert.equal(await cancelCount(metrics, CancelResult.StoreUnavailable), 1);
  assert.equal(await cancelCount(metrics, CancelResult.UnknownKey), 0);
});

test('a backend that cannot be reached is an error, counted, with the reason for the log', async () => {
  const metrics = createMetrics();
  const registry = new CancelRegistry({ metrics });
  const key = await registry.register({ target: target(1, 7, Buffer.from([1, 2, 3, 4])), clientMinorVersion: 0 });
  const outcome = await registry.forward({ ...key, clientAddress: CLIENT }, forwardOptions);
  assert.equal(outcome.result, CancelResult.Error);
  assert.equal(outcome.tenantId, 'acme');
  assert.ok(outcome.error instanceof BackendUnreachableError, String(outcome.error));
  assert.equal(await cancelCount(metrics, CancelResult.Error), 1);
});

test('cancel attempts are rate-limited per client address', async () => {
  let now = 1_000_000;
  const metrics = createMetrics();
  const registry = new CancelRegistry({ metrics, rateLimit: { perSecond: 2, burst: 3 }, now: () => now });
  const unknown = { processId: 99, secretKey: Buffer.alloc(4) };
  const results = [];
  for (let i = 0; i < 5; i++) results.push((await registry.forward({ ...unknown, clientAddress: CLIENT }, forwardOptions)).result);
  assert.deepEqual(results, ['unknown_key', 'unknown_key', 'unknown_key', 'rate_limited', 'rate_limited']);
  assert.equal(
    (await registry.forward({ ...unknown, clientAddress: '192.0.2.11' }, forwardOptions)).result,
    'unknown_key',
    'another address has its own bucket',
  );
  now += 500; // one token back at 2 per second
  assert.equal((await registry.forward({ ...unknown, clientAddress: CLIENT }, forwardOptions)).result, 'unknown_key');
  assert.equal((await registry.forward({ ...unknown, clientAddress: CLIENT }, forwardOptions)).result, 'rate_limited');
  assert.equal(await cancelCount(metrics, CancelResult.RateLimited), 3);
});

test("a flood of guesses from one address does not stop a real client's cancel from that address", async () => {
  const metrics = createMetrics();
  const registry = new CancelRegistry({ metrics, rateLimit: { perSecond: 1, burst: 2 }, now: () => 0 });
  const key = await registry.register({ target: target(1, 7, Buffer.from([1, 2, 3, 4])), clientMinorVersion: 0 });
  for (let i = 0; i < 400; i++)
    await registry.forward({ processId: key.processId, secretKey: Buffer.from([i, i >> 8, 0, 0]), clientAddress: CLIENT }, forwardOptions);
  assert.equal(await cancelCount(metrics, CancelResult.RateLimited), 398);
  // The real key is looked up and forwarded (to a port nobody listens on here: an error, not a rate limit).
  assert.equal((await registry.forward({ ...key, clientAddress: CLIENT }, forwardOptions)).result, CancelResult.Error);
});

test('keys are unique among live sessions, even for backends that share a pid', async () => {
  const store = new MemoryCancelKeyStore();
  const registry = new CancelRegistry({ store });
  const keys = await Promise.all(
    Array.from({ length: 2000 }, () => registry.register({ target: target(5432, 1, Buffer.alloc(4)), clientMinorVersion: 2 })),
  );
  assert.deepEqual(new Set(keys.map((k) => k.processId)), new Set([1]));
  assert.equal(new Set(keys.map((k) => k.secretKey.toString('hex'))).size, keys.length);
  assert.equal(store.size, 2000);
  const [first] = keys;
  assert.deepEqual(await registry.lookup(first.processId, first.secretKey), target(5432, 1, Buffer.alloc(4)));
  await registry.unregister({ processId: first.processId, secretKey: Buffer.alloc(32) });
  assert.equal(store.size, 2000, 'unregister with another key removes nothing');
  for (const key of keys) await registry.unregister(key);
  assert.equal(store.size, 0);
  await registry.close();
});

test('a store that refuses a taken key makes the registry draw another secret', async () => {
  const store = new MemoryCancelKeyStore();
  let refusals = 2;
  const refusing = {
    add: (entry: Parameters<MemoryCancelKeyStore['add']>[0]) => (refusals-- > 0 ? Promise.resolve(false) : store.add(entry)),
    get: (key: Parameters<MemoryCancelKeyStore['get']>[0]) => store.get(key),
    delete: (key: Parameters<MemoryCancelKeyStore['delete']>[0]) => store.delete(key),
    close: () => store.close(),
  };
  const registry = new CancelRegistry({ store: refusing });
  const key = await registry.register({ target: target(5432, 1, Buffer.alloc(4)), clientMinorVersion: 0 });
  assert.equal(refusals, -1);
  assert.ok((await registry.lookup(key.processId, key.secretKey)) !== undefined);
});
