// The splice over real TLS connections on loopback: bytes both ways, backpressure with readers
// held paused, how closes and errors travel, drain at message boundaries, a corrupt backend.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { test, type TestContext } from 'node:test';
import postgres from 'postgres';
import { createTestPki, startPostgres, type PostgresServer } from '@tenantgate/testing';
import {
  BackendMessageType,
  FrameWriter,
  FrontendMessageType,
  ProtocolError,
  buildErrorResponse,
  serializeReadyForQuery,
  serializeTerminate,
} from '@tenantgate/wire';
import { MetricName, createMetrics, type GatewayMetrics } from '../telemetry/index.ts';
import { SpliceCloseReason, splice, type Splice, type SpliceOptions } from './splice.ts';
import {
  SpliceReader,
  SpliceWriter,
  copyDataBlock,
  repeatedDigest,
  sampleMax,
  spliceSockets,
  waitUntilStalled,
  type SpliceSockets,
} from '../testing/splice-pairs.ts';
import { waitForNoSessions } from '../testing/backend-servers.ts';
import { startSpliceProxy } from '../testing/splice-proxy.ts';

const pki = await createTestPki();

const MiB = 1 << 20;
const FATAL_57P01 = buildErrorResponse({
  severity: 'FATAL',
  code: '57P01',
  message: 'terminating connection: the gateway is shutting down',
});

interface Closed {
  readonly reason: SpliceCloseReason;
  readonly error: Error | undefined;
  /** onClose calls so far (must stay 1). */
  readonly calls: () => number;
}

interface Spliced extends SpliceSockets {
  readonly splice: Splice;
  readonly closed: Promise<Closed>;
  readonly metrics: GatewayMetrics;
}

async function start(t: TestContext, options: Omit<SpliceOptions, 'onClose' | 'metrics'> = {}): Promise<Spliced> {
  const sockets = await spliceSockets(t, pki);
  const metrics = createMetrics();
  let calls = 0;
  let settle: (closed: Closed) => void = () => {};
  const closed = new Promise<Closed>((resolve) => (settle = resolve));
  const s = splice(sockets.gatewayClient, sockets.gatewayBackend, {
    ...options,
    metrics,
    onClose: (reason, error) => {
      calls++;
      settle({ reason, error, calls: () => calls });
    },
  });
  t.after(() => s.destroy());
  return { ...sockets, splice: s, closed, metrics };
}

async function counter(metrics: GatewayMetrics, name: MetricName, labels: Record<string, string> = {}): Promise<number> {
  const metric = await metrics.registry.getSingleMetric(name)?.get();
  const match = metric?.values.find((v) => Object.entries(labels).every(([k, value]) => v.labels[k] === value));
  return match?.value ?? 0;
}

function query(sql: string): Buffer {
  return FrameWriter.message(FrontendMessageType.Query, Buffer.byteLength(sql) + 1)
    .cstring(sql)
    .finish();
}

function message(type: number, body: Buffer | string): Buffer {
  const bytes = Buffer.from(body);
  return FrameWriter.message(type, bytes.length).bytes(bytes).finish();
}

/** `toClient` (whole messages) still reaches the client: the splice has not closed. */
async function assertStillForwarding(s: Spliced, app: SpliceReader, toClient: Buffer): Promise<void> {
  const before = app.received;
  s.db.write(toClient);
  await app.waitFor(before + toClient.length);
  assert.equal(s.splice.closeReason, undefined);
}

test('bytes pass both ways unchanged, leftovers first, and reach the metrics at close', async (t) => {
  const leftover = message(BackendMessageType.NoticeResponse, 'SNOTICE\0C00000\0Mhello\0\0');
  const early = query('select 1');
  const s = await start(t, { initialToClient: [leftover], initialToBackend: [early], transactionStatus: 'I' });
  assert.equal(await counter(s.metrics, MetricName.ActiveSessions), 1);
  const app = new SpliceReader(s.app);
  const db = new SpliceReader(s.db);

  const up = randomBytes(300_000);
  const down = copyDataBlock(500_000);
  s.app.write(up);
  s.db.write(down);
  await Promise.all([db.waitFor(early.length + up.length), app.waitFor(leftover.length + down.length)]);
  assert.deepEqual(db.bytes, Buffer.concat([early, up]));
  assert.deepEqual(app.bytes, Buffer.concat([leftover, down]));
  assert.deepEqual(s.splice.bytes, { toClient: leftover.length + down.length, toBackend: early.length + up.length });

  s.app.end(serializeTerminate());
  const closed = await s.closed;
  assert.equal(closed.reason, SpliceCloseReason.ClientClosed);
  assert.equal(await counter(s.metrics, MetricName.Bytes, { direction: 'backend_to_client' }), leftover.length + down.length);
  assert.equal(await counter(s.metrics, MetricName.Bytes, { direction: 'client_to_backend' }), early.length + up.length + 5);
  assert.equal(await counter(s.metrics, MetricName.ActiveSessions), 0);
});

test('bytes reach the metrics while the session lives, in batches: by size, or after an interval', async (t) => {
  const s = await start(t, { transactionStatus: 'I', metricsBatchBytes: 100_000, metricsIntervalMs: 1000 });
  const db = new SpliceReader(s.db);
  new SpliceReader(s.app);
  const upBytes = (): Promise<number> => counter(s.metrics, MetricName.Bytes, { direction: 'client_to_backend' });

  s.app.write(Buffer.alloc(10));
  await db.waitFor(10);
  assert.equal(await upBytes(), 0, 'not per chunk');
  await waitUntil(async () => (await upBytes()) === 10, 'the interval flush');

  s.app.write(Buffer.alloc(150_000));
  await db.waitFor(150_010);
  await waitUntil(async () => (await upBytes()) === 150_010, 'the size or interval flush');
  assert.equal(s.splice.closeReason, undefined);
});

async function waitUntil(check: () => Promise<boolean>, what: string): Promise<void> {
  for (let i = 0; i < 500; i++) {
    if (await check()) return;
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  throw new Error(`timed out waiting for ${what}`);
}

test('100 MB each way through paused readers: the gateway holds a few high-water marks, then delivers every byte', async (t) => {
  const s = await start(t, { transactionStatus: 'I' });
  const { gatewayClient: gc, gatewayBackend: gb } = s;
  const peak = sampleMax({
    clientWritable: () => gc.writableLength,
    clientReadable: () => gc.readableLength,
    backendWritable: () => gb.writableLength,
    backendReadable: () => gb.readableLength,
  });
  t.after(() => peak.stop());
  const db = new SpliceReader(s.db, { keep: false, paused: true });
  const app = new SpliceReader(s.app, { keep: false, paused: true });
  const upBlock = randomBytes(MiB);
  const downBlock = copyDataBlock(MiB, 16_411);
  const up = new SpliceWriter(s.app, upBlock, 100);
  const down = new SpliceWriter(s.db, downBlock, 100);

  // Nobody reads: both writers stall, with most of the 100 MB still unsent.
  await Promise.all([waitUntilStalled(up), waitUntilStalled(down)]);
  const stalled = { ...peak.max };
  t.diagnostic(`stalled after ${up.written} B up, ${down.written} B down; gateway peaks ${JSON.stringify(stalled)}`);
  assert.ok(up.written < 40 * MiB && down.written < 40 * MiB, 'the writers were held back');
  assert.ok(gc.isPaused(), 'the client side is paused while the backend cannot take more');
  assert.ok(gb.isPaused(), 'the backend side is paused while the client cannot take more');

  db.resume();
  app.resume();
  await Promise.all([up.done, down.done, db.waitFor(100 * MiB), app.waitFor(100 * MiB)]);
  peak.stop();
  t.diagnostic(`gateway peaks over the whole run: ${JSON.stringify(peak.max)}`);
  for (const [name, value] of Object.entries(peak.max)) {
    const hwm = name.endsWith('Writable') ? gc.writableHighWaterMark : gc.readableHighWaterMark;
    assert.ok(value <= 4 * hwm, `${name} peaked at ${value} B, more than 4 x ${hwm} B`);
  }
  assert.equal(db.digest(), repeatedDigest(upBlock, 100));
  assert.equal(app.digest(), repeatedDigest(downBlock, 100));
  assert.deepEqual(s.splice.bytes, { toClient: 100 * MiB, toBackend: 100 * MiB });
  assert.equal(s.splice.transactionStatus, 'I', 'CopyData messages leave the status as it was');
});

test('closes travel both ways, each with one onClose and its reason', async (t) => {
  await t.test('the client ends: the backend gets its FIN after the last bytes', async (t) => {
    const s = await start(t);
    const db = new SpliceReader(s.db);
    new SpliceReader(s.app);
    s.app.end(serializeTerminate());
    const closed = await s.closed;
    await db.closed;
    assert.equal(closed.reason, SpliceCloseReason.ClientClosed);
    assert.deepEqual(db.bytes, serializeTerminate());
    assert.ok(db.ended, 'a FIN, not a reset');
    assert.ok(s.gatewayClient.destroyed && s.gatewayBackend.destroyed);
    assert.equal(closed.calls(), 1);
  });

  await t.test('the backend ends after a FATAL: the client gets the FATAL, then its FIN', async (t) => {
    const s = await start(t);
    const app = new SpliceReader(s.app);
    new SpliceReader(s.db);
    const fatal = buildErrorResponse({ severity: 'FATAL', code: '57P01', message: 'terminating connection due to administrator command' });
    s.db.end(fatal);
    const closed = await s.closed;
    await app.closed;
    assert.equal(closed.reason, SpliceCloseReason.BackendClosed);
    assert.deepEqual(app.bytes, fatal);
    assert.ok(app.ended);
    assert.equal(closed.calls(), 1);
  });

  await t.test('the backend resets: the client is closed', async (t) => {
    const s = await start(t);
    const app = new SpliceReader(s.app);
    new SpliceReader(s.db);
    s.dbTcp.resetAndDestroy();
    const closed = await s.closed;
    await app.closed;
    assert.equal(closed.reason, SpliceCloseReason.BackendError);
    assert.equal((closed.error as NodeJS.ErrnoException).code, 'ECONNRESET');
    assert.equal(app.ended, true, 'the client gets a FIN: nothing was in flight');
    assert.equal(closed.calls(), 1);
  });

  await t.test('the client goes away without a word (a reset): the backend is closed', async (t) => {
    const s = await start(t);
    const db = new SpliceReader(s.db);
    new SpliceReader(s.app);
    s.app.destroy();
    const closed = await s.closed;
    await db.closed;
    assert.equal(closed.reason, SpliceCloseReason.ClientError);
    assert.ok(s.gatewayBackend.destroyed);
    assert.equal(closed.calls(), 1);
  });

  await t.test('destroy() closes both at once', async (t) => {
    const s = await start(t);
    const app = new SpliceReader(s.app);
    const db = new SpliceReader(s.db);
    const reason = new Error('drain deadline');
    s.splice.destroy(reason);
    s.splice.destroy();
    const closed = await s.closed;
    await Promise.all([app.closed, db.closed]);
    assert.equal(closed.reason, SpliceCloseReason.Destroyed);
    assert.equal(closed.error, reason);
    assert.equal(closed.calls(), 1);
    assert.equal(await counter(s.metrics, MetricName.ActiveSessions), 0);
  });

  await t.test('a side that ends but never closes is destroyed after the grace period', async (t) => {
    const s = await start(t, { closeGraceMs: 100 });
    new SpliceReader(s.app);
    // The backend end reads nothing and never closes on its own; allowHalfOpen keeps it writable.
    s.db.allowHalfOpen = true;
    s.app.end();
    const closed = await s.closed;
    assert.equal(closed.reason, SpliceCloseReason.ClientClosed);
    assert.ok(s.gatewayBackend.destroyed);
  });
});

/** A session at a message boundary that `end` closes at once: FATAL to the client, Terminate to the backend. */
async function assertEndsAtOnce(
  t: TestContext,
  transactionStatus: 'I' | 'T',
  end: (splice: Splice) => void,
  reason: SpliceCloseReason,
): Promise<{ app: SpliceReader }> {
  const s = await start(t, { transactionStatus });
  const app = new SpliceReader(s.app);
  const db = new SpliceReader(s.db);
  assert.equal(s.splice.idle, transactionStatus === 'I');
  end(s.splice);
  const closed = await s.closed;
  await Promise.all([app.closed, db.closed]);
  assert.equal(closed.reason, reason);
  assert.deepEqual(app.bytes, FATAL_57P01);
  assert.deepEqual(db.bytes, serializeTerminate());
  return { app };
}

test('closeWhenIdle on an idle session: FATAL now, Terminate to the backend, both closed', async (t) => {
  const { app } = await assertEndsAtOnce(t, 'I', (splice) => splice.closeWhenIdle(FATAL_57P01), SpliceCloseReason.Drained);
  assert.ok(app.ended);
});

test('terminate mid-message: the message in flight is finished, never cut, then FATAL; client bytes meanwhile are dropped', async (t) => {
  const s = await start(t, { transactionStatus: 'I' });
  const app = new SpliceReader(s.app);
  const db = new SpliceReader(s.db);
  const begin = query('begin; select 1');
  s.app.write(begin);
  await db.waitFor(begin.length);
  const row = message(BackendMessageType.DataRow, Buffer.from([0, 1, 0, 0, 0, 1, 0x31]));
  const complete = message(BackendMessageType.CommandComplete, 'BEGIN\0');
  s.db.write(Buffer.concat([complete, row.subarray(0, 4)])); // a whole message, then half of one
  await app.waitFor(complete.length + 4);
  s.splice.terminate(FATAL_57P01);
  assert.equal(s.splice.closeReason, undefined, 'the row in flight is not cut');
  s.app.write(query('select 2')); // dropped: the session is ending
  const selectComplete = message(BackendMessageType.CommandComplete, 'SELECT 1\0');
  s.db.write(Buffer.concat([row.subarray(4), selectComplete, row.subarray(0, 2)]));
  const closed = await s.closed;
  await Promise.all([app.closed, db.closed]);
  assert.equal(closed.reason, SpliceCloseReason.Terminated);
  assert.deepEqual(
    app.bytes,
    Buffer.concat([complete, row, selectComplete, FATAL_57P01]),
    'the row finished, the whole messages that came with it, no part of the next, then FATAL',
  );
  assert.deepEqual(db.bytes, Buffer.concat([begin, serializeTerminate()]), 'the later query never reached the backend');
});

test('terminate while a message never finishes (a client that stopped reading holds it back): both cut after the grace time', async (t) => {
  const s = await start(t, { transactionStatus: 'I', closeGraceMs: 200 });
  const app = new SpliceReader(s.app);
  const row = message(BackendMessageType.DataRow, Buffer.alloc(64, 1));
  s.db.write(row.subarray(0, 10));
  await app.waitFor(10);
  assert.equal(s.splice.terminate(FATAL_57P01), true);
  assert.equal(s.splice.terminate(FATAL_57P01), false, 'already ending: not counted twice');
  const closed = await s.closed;
  assert.equal(closed.reason, SpliceCloseReason.Terminated);
});

test('terminate at a message boundary, in a transaction: FATAL at once', async (t) => {
  await assertEndsAtOnce(t, 'T', (splice) => splice.terminate(FATAL_57P01), SpliceCloseReason.Terminated);
});

test('closeWhenIdle waits for the message boundary after a ReadyForQuery I, with no query in flight', async (t) => {
  const s = await start(t, { transactionStatus: 'I' });
  const app = new SpliceReader(s.app);
  const db = new SpliceReader(s.db);
  const sent: Buffer[] = [];
  const send = async (bytes: Buffer): Promise<void> => {
    sent.push(bytes);
    const expected = Buffer.concat(sent).length;
    s.db.write(bytes);
    await app.waitFor(expected);
  };

  // A query is on its way: the last ReadyForQuery was I, but the session is not idle.
  const begin = query('begin; select 1');
  s.app.write(begin);
  await db.waitFor(begin.length);
  assert.equal(s.splice.idle, false);
  s.splice.closeWhenIdle(FATAL_57P01);

  const row = message(BackendMessageType.DataRow, Buffer.from([0, 1, 0, 0, 0, 1, 0x31]));
  await send(message(BackendMessageType.CommandComplete, 'BEGIN\0'));
  await send(row.subarray(0, 4)); // half a message
  assert.equal(s.splice.closeReason, undefined);
  await send(Buffer.concat([row.subarray(4), message(BackendMessageType.CommandComplete, 'SELECT 1\0'), serializeReadyForQuery('T')]));
  assert.equal(s.splice.transactionStatus, 'T');
  assert.equal(s.splice.closeReason, undefined, 'in a transaction: not idle');

  const commit = query('commit');
  s.app.write(commit);
  await db.waitFor(begin.length + commit.length);
  const ready = serializeReadyForQuery('I');
  await send(Buffer.concat([message(BackendMessageType.CommandComplete, 'COMMIT\0'), ready.subarray(0, 3)]));
  assert.equal(s.splice.closeReason, undefined, 'the ReadyForQuery header is not whole yet');

  s.db.write(ready.subarray(3));
  sent.push(ready.subarray(3));
  const closed = await s.closed;
  await Promise.all([app.closed, db.closed]);
  assert.equal(closed.reason, SpliceCloseReason.Drained);
  assert.deepEqual(app.bytes, Buffer.concat([...sent, FATAL_57P01]), 'every whole message, then the FATAL');
  assert.deepEqual(db.bytes, Buffer.concat([begin, commit, serializeTerminate()]));
});

test('client bytes read before the splice are a query in flight: no drain before its answer', async (t) => {
  const handover = Buffer.concat([message(BackendMessageType.ParameterStatus, 'TimeZone\0UTC\0'), serializeReadyForQuery('I')]);
  const early = query('select 1');
  const s = await start(t, { transactionStatus: 'I', initialToClient: [handover], initialToBackend: [early] });
  const app = new SpliceReader(s.app);
  const db = new SpliceReader(s.db);
  await Promise.all([app.waitFor(handover.length), db.waitFor(early.length)]);
  assert.equal(s.splice.idle, false);
  s.splice.closeWhenIdle(FATAL_57P01);
  const answer = Buffer.concat([message(BackendMessageType.CommandComplete, 'SELECT 1\0'), serializeReadyForQuery('I')]);
  s.db.write(answer);
  assert.equal((await s.closed).reason, SpliceCloseReason.Drained);
  await app.closed;
  assert.deepEqual(app.bytes, Buffer.concat([handover, answer, FATAL_57P01]));
});

test('without a known status, closeWhenIdle waits for the first ReadyForQuery', async (t) => {
  const s = await start(t);
  const app = new SpliceReader(s.app);
  new SpliceReader(s.db);
  assert.equal(s.splice.transactionStatus, null);
  assert.equal(s.splice.idle, false);
  s.splice.closeWhenIdle(FATAL_57P01);
  const notice = message(BackendMessageType.ParameterStatus, 'TimeZone\0UTC\0');
  await assertStillForwarding(s, app, notice);
  s.db.write(serializeReadyForQuery('I'));
  assert.equal((await s.closed).reason, SpliceCloseReason.Drained);
  await app.closed;
  assert.deepEqual(app.bytes, Buffer.concat([notice, serializeReadyForQuery('I'), FATAL_57P01]));
});

test('a backend stream that loses its framing is cut: the client never sees the bad bytes', async (t) => {
  const s = await start(t, { transactionStatus: 'I' });
  const app = new SpliceReader(s.app);
  const db = new SpliceReader(s.db);
  const good = message(BackendMessageType.NoticeResponse, 'SNOTICE\0C00000\0Mfine\0\0');
  s.db.write(good);
  await app.waitFor(good.length);
  s.db.write(Buffer.from([0x00, 0xff, 0xff, 0xff, 0xff, 1, 2, 3]));
  const closed = await s.closed;
  await Promise.all([app.closed, db.closed]);
  assert.equal(closed.reason, SpliceCloseReason.BackendError);
  assert.ok(closed.error instanceof ProtocolError, String(closed.error));
  assert.deepEqual(app.bytes, good);
});

test('a ReadyForQuery with a declared length other than 5 is cut too', async (t) => {
  const s = await start(t, { transactionStatus: 'I' });
  const app = new SpliceReader(s.app);
  new SpliceReader(s.db);
  s.db.write(Buffer.from([BackendMessageType.ReadyForQuery, 0, 0, 0, 6, 0x49, 0x49]));
  const closed = await s.closed;
  await app.closed;
  assert.equal(closed.reason, SpliceCloseReason.BackendError);
  assert.equal(app.received, 0);
});

// ---------------------------------------------------------------------------------------------
// A real PostgreSQL behind a tiny hand-over (testing/splice-proxy.ts), pg_hba `cert`

test('a 50 MB COPY into and out of a real PostgreSQL passes through the splice, row for row', async (t) => {
  const db = await startPostgres({
    serverCert: pki.backend.chainPem,
    serverKey: pki.backend.keyPem,
    clientCa: pki.ca.certPem,
    hba: ['hostssl all all 127.0.0.1/32 cert'],
    roles: [{ name: 'alice' }],
  });
  t.after(() => db.stop());
  await db.sql('CREATE TABLE items (id int PRIMARY KEY, payload text NOT NULL); ALTER TABLE items OWNER TO alice');
  const alice = await pki.client('alice');
  const metrics = createMetrics();
  const proxy = await startSpliceProxy(t, {
    db,
    pki,
    identity: { caPem: pki.ca.certPem, certPem: alice.chainPem, keyPem: alice.keyPem },
    metrics,
  });
  const sql = postgres({
    host: proxy.host,
    port: proxy.port,
    user: 'alice',
    database: 'postgres',
    ssl: { ca: pki.ca.certPem, servername: 'localhost' },
    fetch_types: false,
    max: 1,
    connect_timeout: 5,
  });
  t.after(() => sql.end({ timeout: 1 }));
  const first = proxy.nextSession();
  assert.deepEqual([...(await sql`SELECT current_user AS user`)], [{ user: 'alice' }]);
  const session = await first;
  const peak = sampleMax({ toClient: () => session.client.writableLength, fromBackend: () => session.backend.readableLength });
  t.after(() => peak.stop());

  const rows = 500_000;
  const sent = copyRows(rows);
  await pipeline(Readable.from(sent.chunks()), await sql`COPY items (id, payload) FROM STDIN`.writable());
  const [count] = await sql`SELECT count(*)::int AS n, sum(length(payload))::bigint AS chars FROM items`;
  assert.deepEqual({ ...count }, { n: rows, chars: String(sent.payloadChars) });

  let received = 0;
  let lines = 0;
  const out = await sql`COPY items (id, payload) TO STDOUT`.readable();
  for await (const chunk of out as AsyncIterable<Buffer>) {
    if (received === 0) await new Promise((resolve) => setTimeout(resolve, 200)); // a slow reader, once
    received += chunk.length;
    for (let i = chunk.indexOf(0x0a); i !== -1; i = chunk.indexOf(0x0a, i + 1)) lines++;
  }
  assert.equal(received, sent.bytes);
  assert.equal(lines, rows);
  peak.stop();
  t.diagnostic(`COPY of ${sent.bytes} B each way; gateway peaks ${JSON.stringify(peak.max)}`);
  assert.ok(peak.max.toClient <= 4 * session.client.writableHighWaterMark, `client writable peaked at ${peak.max.toClient}`);
  assert.ok(peak.max.fromBackend <= 4 * session.backend.readableHighWaterMark, `backend readable peaked at ${peak.max.fromBackend}`);

  await sql.end({ timeout: 5 });
  assert.equal(await session.closed, SpliceCloseReason.ClientClosed);
  const { toClient, toBackend } = session.splice.bytes;
  assert.ok(toBackend > sent.bytes && toClient > sent.bytes, `bytes ${toBackend} up, ${toClient} down`);
  assert.equal(await counter(metrics, MetricName.Bytes, { direction: 'client_to_backend' }), toBackend);
  assert.equal(await counter(metrics, MetricName.Bytes, { direction: 'backend_to_client' }), toClient);
  assert.equal(session.splice.transactionStatus, 'I');
});

test('drain on a real PostgreSQL: a running query finishes, then FATAL 57P01, and the backend session ends', async (t) => {
  const db = await startPostgres({
    serverCert: pki.backend.chainPem,
    serverKey: pki.backend.keyPem,
    clientCa: pki.ca.certPem,
    hba: ['hostssl all all 127.0.0.1/32 cert'],
    roles: [{ name: 'alice' }],
  });
  t.after(() => db.stop());
  const alice = await pki.client('alice');
  const proxy = await startSpliceProxy(t, { db, pki, identity: { caPem: pki.ca.certPem, certPem: alice.chainPem, keyPem: alice.keyPem } });
  const sql = postgres({
    host: proxy.host,
    port: proxy.port,
    user: 'alice',
    database: 'postgres',
    ssl: { ca: pki.ca.certPem, servername: 'localhost' },
    fetch_types: false,
    max: 1,
    connect_timeout: 5,
  });
  t.after(() => sql.end({ timeout: 1 }));
  const first = proxy.nextSession();
  await sql`SELECT 1`;
  const session = await first;

  const running = sql`SELECT pg_sleep(0.5), 42 AS answer`;
  void running.catch(() => {});
  await waitForActiveQuery(db, 'pg_sleep');
  session.splice.closeWhenIdle(FATAL_57P01);
  assert.equal(session.splice.closeReason, undefined, 'a query is running: not idle');
  const [row] = await running;
  assert.equal(row.answer, 42);
  assert.equal(await session.closed, SpliceCloseReason.Drained);
  await waitForNoSessions(db);
});

async function waitForActiveQuery(db: PostgresServer, text: string): Promise<void> {
  for (let i = 0; i < 250; i++) {
    const rows = await db.sql("SELECT 1 FROM pg_stat_activity WHERE state = 'active' AND query LIKE $1 AND pid <> pg_backend_pid()", [
      `%${text}%`,
    ]);
    if (rows.length > 0) return;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  throw new Error(`no active query like ${text}`);
}

/** `rows` lines of COPY text (`id\tpayload\n`), about 104 bytes each, made 1000 rows at a time. */
function copyRows(rows: number): { chunks(): Generator<Buffer>; bytes: number; payloadChars: number } {
  const payload = (i: number): string => `${i.toString(36)}-${'x'.repeat(90)}`;
  let bytes = 0;
  let payloadChars = 0;
  for (let i = 0; i < rows; i++) {
    bytes += `${i}\t${payload(i)}\n`.length;
    payloadChars += payload(i).length;
  }
  return {
    bytes,
    payloadChars,
    *chunks() {
      for (let start = 0; start < rows; start += 1000) {
        let text = '';
        for (let i = start; i < Math.min(rows, start + 1000); i++) text += `${i}\t${payload(i)}\n`;
        yield Buffer.from(text);
      }
    },
  };
}
