// Real client drivers through the whole gateway (createGateway) to a real PostgreSQL 15 that
// authenticates the gateway by SCRAM (with the key recovered from the client's proof) and its
// client certificate (clientcert=verify-full): psql (libpq 15), node-postgres and postgres.js,
// with sslmode=require and verify-full; simple and extended queries; COPY of 100 MB each way;
// LISTEN/NOTIFY; 1 MB values both ways; 10,000 queries on one session; a COPY that fails, a
// client that vanishes mid-query, a backend session terminated under its client. Every check
// compares with what the backend itself holds, read on a direct connection that bypasses the gateway.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes, type Hash } from 'node:crypto';
import { once } from 'node:events';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createTestPki, runPsql } from '@tenantgate/testing';
import {
  PASSWORD,
  connectPg,
  postgresJs,
  psqlExit,
  psqlSettings,
  roleSecret,
  scratchDir,
  spawnPsql,
  startBackend,
  startGateway,
  tenantHost,
} from './harness.ts';

/** Rows of about 1 KB: 100,000 of them make a COPY of a little over 100 MB. */
const COPY_ROWS = 100_000;
const PAYLOAD_LENGTH = 1000;
const MB = 1 << 20;

test('real clients through the gateway', async (t) => {
  const pki = await createTestPki();
  const dir = scratchDir(t, 'gw-clients');
  const caFile = join(dir, 'ca.pem');
  await writeFile(caFile, pki.ca.certPem);
  const backend = await startBackend(t, pki, {
    hba: ['hostssl all all 127.0.0.1/32 scram-sha-256 clientcert=verify-full'],
    roles: [{ name: 'app', password: PASSWORD }],
    databases: [{ name: 'app', owner: 'app' }],
    // PostgreSQL notices a vanished client during a long query only with this (PostgreSQL 14+).
    settings: { client_connection_check_interval: '100ms' },
  });
  const token = randomBytes(8).toString('hex');
  await backend.sql(
    `create table marker as select '${token}'::text as token;
     create table copy_in (id int, payload text);
     create table blobs (id int primary key, body text, bin bytea);
     grant select on marker to app; grant select, insert on copy_in, blobs to app`,
    [],
    { database: 'app' },
  );
  const gateway = await startGateway(t, {
    pki,
    dir,
    tenants: [
      {
        id: 'acme',
        backend: { host: '127.0.0.1', port: backend.port },
        roles: [{ name: 'app', scramSecret: await roleSecret(backend, 'app') }],
      },
    ],
  });
  const direct = (sql: string, params: unknown[] = []) => backend.sql(sql, params, { database: 'app' });

  await t.test('psql (libpq 15) with sslmode=require and with verify-full reads the backend', async () => {
    const sql = "select token || ' ' || current_setting('port') from marker";
    const expected = { code: 0, stdout: `${token} ${backend.port}\n`, stderr: '' };
    const requireMode = psqlSettings(gateway, caFile, 'acme', { sslmode: 'require' });
    delete requireMode.sslrootcert; // with a root certificate, libpq's require verifies the CA
    assert.deepEqual(await runPsql(requireMode, { sql, password: PASSWORD, home: dir }), expected);
    assert.deepEqual(await runPsql(psqlSettings(gateway, caFile, 'acme'), { sql, password: PASSWORD, home: dir }), expected);
  });

  for (const sslmode of ['require', 'verify-full'] as const) {
    await t.test(`pg with ${sslmode}: simple, parameterized and named prepared queries`, async (t) => {
      const client = await connectPg(t, gateway, pki, { servername: tenantHost('acme'), sslmode });
      assert.deepEqual((await client.query('select token from marker')).rows, [{ token }]);
      const bound = await client.query('select $1::text || token as v, $2::int * 2 as n from marker', ['x-', 21]);
      assert.deepEqual(bound.rows, [{ v: `x-${token}`, n: 42 }]);
      for (const n of [1, 2, 3]) {
        const prepared = await client.query({ name: 'plus', text: 'select $1::int + 1 as n, token from marker', values: [n] });
        assert.deepEqual(prepared.rows, [{ n: n + 1, token }]);
      }
      const [{ port }] = (await client.query<{ port: string }>("select current_setting('port') as port")).rows;
      assert.equal(Number(port), backend.port);
    });

    await t.test(`postgres.js with ${sslmode}: extended and simple queries`, async (t) => {
      const sql = postgresJs(t, gateway, pki, { servername: tenantHost('acme'), sslmode });
      const rows = await sql`select ${'y-'}::text || token as v, ${7}::int as n from marker`;
      assert.deepEqual([...rows], [{ v: `y-${token}`, n: 7 }]);
      const simple = await sql`select token from marker`.simple();
      assert.deepEqual([...simple], [{ token }]);
    });
  }

  await t.test('postgres.js over direct TLS (sslnegotiation=direct, ALPN postgresql) logs in and queries', async (t) => {
    const sql = postgresJs(t, gateway, pki, { servername: tenantHost('acme'), direct: true });
    assert.deepEqual([...(await sql`select token from marker`)], [{ token }]);
  });

  await t.test('COPY FROM STDIN of 100 MB through psql: the backend holds every row, byte for byte', async () => {
    const hash = createHash('md5');
    const psql = spawnPsql(psqlSettings(gateway, caFile, 'acme'), 'copy copy_in (id, payload) from stdin', dir);
    const exited = psqlExit(psql);
    let sent = 0;
    await pipeline(Readable.from(copyRows(COPY_ROWS, hash, (n) => (sent += n))), psql.stdin!);
    const { code, stderr } = await exited;
    assert.equal(stderr, '');
    assert.equal(code, 0);
    assert.ok(sent > 100_000_000, `sent ${sent} bytes`);
    const [stored] = await direct(
      `select count(*)::int as rows, md5(string_agg(id::text || E'\\t' || payload || E'\\n', '' order by id)) as md5 from copy_in`,
    );
    assert.deepEqual(stored, { rows: COPY_ROWS, md5: hash.digest('hex') });
  });

  await t.test('COPY TO STDOUT of 100 MB through psql: the bytes are the backend table', async () => {
    await direct(
      `create table copy_out as select i as id, repeat(md5(i::text), 32) as payload from generate_series(1, ${COPY_ROWS}) i;
       grant select on copy_out to app`,
    );
    const psql = spawnPsql(psqlSettings(gateway, caFile, 'acme'), 'copy (select id, payload from copy_out order by id) to stdout', dir);
    const exited = psqlExit(psql);
    const received = await digest(psql.stdout!);
    const { code, stderr } = await exited;
    assert.equal(stderr, '');
    assert.equal(code, 0);
    const [expected] = await direct(
      `select sum(octet_length(id::text) + octet_length(payload) + 2)::bigint::text as bytes,
              md5(string_agg(id::text || E'\\t' || payload || E'\\n', '' order by id)) as md5 from copy_out`,
    );
    assert.ok(received.bytes > 100_000_000, `received ${received.bytes} bytes`);
    assert.deepEqual({ bytes: String(received.bytes), md5: received.md5 }, expected);
  });

  await t.test('postgres.js COPY in (writable) and out (readable) round-trip 100 MB', async (t) => {
    await direct('create table copy_js (id int, payload text); grant select, insert on copy_js to app');
    const sql = postgresJs(t, gateway, pki, { servername: tenantHost('acme') });
    const hash = createHash('md5');
    const writable = await sql`copy copy_js (id, payload) from stdin`.writable();
    await pipeline(Readable.from(copyRows(COPY_ROWS, hash, () => {})), writable);
    const sentMd5 = hash.digest('hex');
    const [stored] = await direct(
      `select count(*)::int as rows, md5(string_agg(id::text || E'\\t' || payload || E'\\n', '' order by id)) as md5 from copy_js`,
    );
    assert.deepEqual(stored, { rows: COPY_ROWS, md5: sentMd5 });
    const readable = await sql`copy (select id, payload from copy_js order by id) to stdout`.readable();
    assert.equal((await digest(readable)).md5, sentMd5);
  });

  await t.test('LISTEN/NOTIFY across two sessions through the gateway', async (t) => {
    const listener = await connectPg(t, gateway, pki, { servername: tenantHost('acme') });
    const notifier = await connectPg(t, gateway, pki, { servername: tenantHost('acme') });
    await listener.query('listen tenant_events');
    const arrived = once(listener, 'notification');
    const [{ pid }] = (
      await notifier.query<{ pid: number }>(
        "select pg_backend_pid() as pid, pg_notify('tenant_events', 'from ' || (select token from marker))",
      )
    ).rows;
    const [notification] = (await arrived) as [{ channel: string; payload: string; processId: number }];
    assert.equal(notification.channel, 'tenant_events');
    assert.equal(notification.payload, `from ${token}`);
    // The backend's own pid of the notifying session: the message is PostgreSQL's, untouched.
    assert.equal(notification.processId, pid);
    // And a NOTIFY statement, received while the listener is idle with no query of its own.
    const second = once(listener, 'notification');
    await notifier.query("notify tenant_events, 'second'");
    assert.equal(((await second) as [{ payload: string }])[0].payload, 'second');
  });

  await t.test(
    "a session's own NOTIFY carries the pid its BackendKeyData announced (how libpq apps skip their own notifications)",
    async (t) => {
      const client = await connectPg(t, gateway, pki, { servername: tenantHost('acme') });
      await client.query('listen self_events');
      const arrived = once(client, 'notification');
      await client.query("notify self_events, 'me'");
      const [notification] = (await arrived) as [{ processId: number }];
      assert.equal(notification.processId, (client as unknown as { processID: number }).processID);
    },
  );

  await t.test('a 1 MB value goes to the backend and comes back intact (text and bytea)', async (t) => {
    const client = await connectPg(t, gateway, pki, { servername: tenantHost('acme') });
    const body = randomBytes(MB / 2).toString('hex');
    const bin = randomBytes(MB);
    await client.query('insert into blobs (id, body, bin) values ($1, $2, $3)', [1, body, bin]);
    const [stored] = await direct('select length(body) as length, md5(body) as body_md5, md5(bin) as bin_md5 from blobs where id = 1');
    assert.deepEqual(stored, { length: MB, body_md5: md5(body), bin_md5: md5(bin) });
    const back = await client.query<{ body: string; bin: Buffer }>('select body, bin from blobs where id = $1', [1]);
    assert.equal(back.rows[0]?.body, body);
    assert.ok(back.rows[0]?.bin.equals(bin), 'the bytea came back as sent');
    // Made by the backend, 1 MB in one DataRow, through the simple protocol.
    const made = await client.query<{ v: string }>("select repeat(md5('tenantgate'), 32768) as v");
    assert.equal(made.rows[0]?.v, md5('tenantgate').repeat(32768));
  });

  await t.test('10,000 queries on one session, each answered by the same backend session', async (t) => {
    const client = await connectPg(t, gateway, pki, { servername: tenantHost('acme') });
    const [{ pid }] = (await client.query<{ pid: number }>('select pg_backend_pid() as pid')).rows;
    for (let i = 0; i < 10_000; i++) {
      const { rows } = await client.query<{ n: number }>('select $1::int + 1 as n', [i]);
      assert.equal(rows[0]?.n, i + 1);
    }
    assert.deepEqual((await client.query('select pg_backend_pid() as pid')).rows, [{ pid }]);
    const [activity] = await direct('select count(*)::int as sessions from pg_stat_activity where pid = $1', [pid]);
    assert.deepEqual(activity, { sessions: 1 });
  });

  await t.test('a COPY that fails halfway: the error reaches the client and the session goes on', async (t) => {
    const sql = postgresJs(t, gateway, pki, { servername: tenantHost('acme') });
    const writable = await sql`copy copy_in (id, payload) from stdin`.writable();
    // The stream is left open until the error arrives: postgres.js loses an error that comes
    // after its writable's final() (the pipeline would never settle, with or without the gateway).
    const failed = once(writable, 'error') as Promise<[{ code?: string }]>;
    const good = () => Buffer.concat([...copyRows(2_000, createHash('md5'), () => {})]);
    writable.write(good());
    writable.write(Buffer.from('not-a-number\tpayload\n'));
    writable.write(good());
    const [error] = await failed;
    assert.equal(error.code, '22P02');
    assert.deepEqual([...(await sql`select token from marker`)], [{ token }]);
  });

  await t.test('a client that vanishes mid-query leaves no session on the backend', async (t) => {
    const client = await connectPg(t, gateway, pki, { servername: tenantHost('acme') });
    const [{ pid }] = (await client.query<{ pid: number }>('select pg_backend_pid() as pid')).rows;
    client.query('select pg_sleep(60)').catch(() => {});
    await waitFor(async () => (await direct("select 1 from pg_stat_activity where pid = $1 and state = 'active'", [pid])).length === 1);
    // No Terminate, no FIN first: the socket is just gone.
    (client as unknown as { connection: { stream: { destroy(): void } } }).connection.stream.destroy();
    await waitFor(async () => (await direct('select 1 from pg_stat_activity where pid = $1', [pid])).length === 0);
  });

  await t.test('a backend session terminated by an administrator: the client gets FATAL 57P01 and the next one is served', async (t) => {
    const client = await connectPg(t, gateway, pki, { servername: tenantHost('acme') });
    const [{ pid }] = (await client.query<{ pid: number }>('select pg_backend_pid() as pid')).rows;
    const failed = new Promise<{ code?: string }>((resolve) => client.once('error', resolve));
    await direct('select pg_terminate_backend($1)', [pid]);
    assert.equal((await failed).code, '57P01');
    const next = await connectPg(t, gateway, pki, { servername: tenantHost('acme') });
    assert.deepEqual((await next.query('select token from marker')).rows, [{ token }]);
  });
});

/** Polls `check` until it holds; fails after many tries rather than after some time. */
async function waitFor(check: () => Promise<boolean>): Promise<void> {
  for (let i = 0; i < 500; i++) {
    if (await check()) return;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  assert.fail('the condition never held');
}

/**
 * COPY text rows `id\tpayload\n` in chunks of about 64 KB, made as they are read (never the whole
 * COPY in memory); every byte goes through `hash`. Payloads have no tab, newline or backslash.
 */
function* copyRows(rows: number, hash: Hash, onBytes: (n: number) => void): Generator<Buffer> {
  const alphabet = 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789';
  const source = alphabet.repeat(Math.ceil(PAYLOAD_LENGTH / alphabet.length) + 1);
  let lines: string[] = [];
  let size = 0;
  for (let id = 1; id <= rows; id++) {
    const start = id % alphabet.length;
    const line = `${id}\t${source.slice(start, start + PAYLOAD_LENGTH)}\n`;
    lines.push(line);
    size += line.length;
    if (size >= 64 * 1024 || id === rows) {
      const chunk = Buffer.from(lines.join(''), 'latin1');
      hash.update(chunk);
      onBytes(chunk.length);
      lines = [];
      size = 0;
      yield chunk;
    }
  }
}

/** md5 and length of a stream, read to its end without keeping it. */
async function digest(stream: Readable): Promise<{ bytes: number; md5: string }> {
  const hash = createHash('md5');
  let bytes = 0;
  await pipeline(
    stream,
    new Writable({
      write(chunk: Buffer, _encoding, callback) {
        hash.update(chunk);
        bytes += chunk.length;
        callback();
      },
    }),
  );
  return { bytes, md5: hash.digest('hex') };
}

function md5(data: string | Buffer): string {
  return createHash('md5').update(data).digest('hex');
}
