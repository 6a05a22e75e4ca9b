// What the gateway does with clients that are not well-behaved Postgres clients, through the
// whole gateway (createGateway) on raw sockets: malformed and oversized startup packets, garbage,
// bytes smuggled after an SSLRequest (CVE-2021-23214), clients that say nothing before or after
// TLS, and direct TLS (PostgreSQL 17 `sslnegotiation=direct`) with and without ALPN "postgresql".
// The answers follow PostgreSQL's: a FATAL where it sends one, a close without a word where it
// closes. After each, a normal client is served by the same gateway.
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { connect as connectTls, type TLSSocket } from 'node:tls';
import type { Gateway } from '@tenantgate/gateway';
import { createTestPki, type PostgresServer, type TestPki } from '@tenantgate/testing';
import { serializeSSLRequest, serializeStartupMessage } from '@tenantgate/wire';
import {
  PASSWORD,
  dataRowValues,
  errorFields,
  nextMessage,
  parsed,
  pgClient,
  queryMessage,
  rawConnect,
  readUntilClose,
  scramLogin,
  scratchDir,
  serverMessages,
  startCertBackend,
  startGateway,
  tenantHost,
  upgradeToTls,
} from './harness.ts';

/** Short enough to wait for in a test, long enough for any real client's handshake. */
const SHORT_TIMEOUT_MS = 500;

test('malformed and hostile clients', async (t) => {
  const pki = await createTestPki();
  const dir = scratchDir(t, 'gw-malformed');
  const backend = await startCertBackend(t, pki);
  await backend.sql("create table marker as select 'from-the-backend'::text as name; grant select on marker to app", [], {
    database: 'app',
  });
  const tenants = [{ id: 'acme', backend: { host: '127.0.0.1', port: backend.port }, roles: [{ name: 'app', password: PASSWORD }] }];
  const gateway = await startGateway(t, { pki, dir, tenants });
  const impatient = await startGateway(t, {
    pki,
    dir,
    tenants,
    settings: { handshakeTimeoutMs: SHORT_TIMEOUT_MS, authTimeoutMs: SHORT_TIMEOUT_MS },
  });

  /** Runs `attack`, then checks that a normal client is served by the same gateway. */
  async function thenServes(target: Gateway, attack: () => Promise<void>): Promise<void> {
    await attack();
    await assertServes(target, pki, backend);
  }

  /** Raw bytes in plaintext; everything the gateway sent back before it closed. */
  async function plaintextAnswer(t: TestContext, bytes: Buffer): Promise<Buffer> {
    const socket = await rawConnect(t, gateway);
    const answer = readUntilClose(socket);
    socket.write(bytes);
    return answer;
  }

  /** An SSLRequest, TLS, then raw bytes inside TLS; everything the gateway sent back in TLS. */
  async function tlsAnswer(t: TestContext, bytes: Buffer): Promise<Buffer> {
    const socket = await upgradeToTls(t, gateway, pki, tenantHost('acme'));
    const answer = readUntilClose(socket);
    socket.write(bytes);
    return answer;
  }

  const closedSilently: [string, Buffer][] = [
    ['a startup packet shorter than 8 bytes', Buffer.from([0, 0, 0, 4, 0, 3, 0, 0])],
    ['a startup packet longer than 10000 bytes', Buffer.concat([int32(10_001), int32(0x0003_0000), Buffer.alloc(64, 0x61)])],
    ['a length of 2^31-1', Buffer.concat([int32(0x7fff_ffff), int32(0x0003_0000)])],
    ['an HTTP request', Buffer.from('GET / HTTP/1.1\r\nHost: acme.db.example.test\r\n\r\n')],
  ];
  for (const [what, bytes] of closedSilently) {
    await t.test(`${what} in plaintext: closed without a word`, (t) =>
      thenServes(gateway, async () => assert.equal((await plaintextAnswer(t, bytes)).length, 0)),
    );
    await t.test(`${what} inside TLS: closed`, (t) => thenServes(gateway, async () => assert.equal((await tlsAnswer(t, bytes)).length, 0)));
  }

  const refused: [string, Buffer, string, RegExp][] = [
    [
      'a startup packet without its final NUL',
      startupBytes(['user', 'app', 'database', 'app'], false),
      '08P01',
      /expected terminator as last byte/,
    ],
    [
      'a startup packet with a parameter name cut short',
      Buffer.concat([int32(14), int32(0x0003_0000), Buffer.from('user\0a')]),
      '08P01',
      /./,
    ],
    [
      'a startup packet without a user',
      startupBytes(['database', 'app'], true),
      '28000',
      /^no PostgreSQL user name specified in startup packet$/,
    ],
  ];
  for (const [what, bytes, sqlState, message] of refused) {
    await t.test(`${what} inside TLS: FATAL ${sqlState} in TLS`, (t) =>
      thenServes(gateway, async () => {
        const fields = errorFields(await tlsAnswer(t, bytes));
        assert.deepEqual([fields.severity, fields.code], ['FATAL', sqlState]);
        assert.match(fields.message, message);
      }),
    );
    await t.test(`${what} in plaintext: FATAL ${sqlState}, in plaintext`, (t) =>
      thenServes(gateway, async () => {
        const fields = errorFields(await plaintextAnswer(t, bytes));
        assert.deepEqual([fields.severity, fields.code], ['FATAL', sqlState]);
        assert.match(fields.message, message);
      }),
    );
  }

  await t.test('a well-formed plaintext startup: FATAL 28000 "TLS is required" with the sslmode hint', (t) =>
    thenServes(gateway, async () => {
      const fields = errorFields(await plaintextAnswer(t, startupBytes(['user', 'app', 'database', 'app'], true)));
      assert.deepEqual([fields.severity, fields.code, fields.message], ['FATAL', '28000', 'TLS is required']);
      assert.match(fields.hint ?? '', /sslmode=require/);
    }),
  );

  await t.test("bytes after the SSLRequest, sent with it: plaintext FATAL 08P01 and no 'S'", (t) =>
    thenServes(gateway, async () => {
      const answer = await plaintextAnswer(
        t,
        Buffer.concat([serializeSSLRequest(), startupBytes(['user', 'app', 'database', 'app'], true)]),
      );
      assert.notEqual(answer.toString('latin1', 0, 1), 'S');
      const fields = errorFields(answer);
      assert.deepEqual([fields.severity, fields.code], ['FATAL', '08P01']);
      assert.match(fields.message, /^received unencrypted data after SSL request$/);
    }),
  );

  await t.test("an SSLRequest, 'S', then something that is not TLS: closed", (t) =>
    thenServes(gateway, async () => {
      const socket = await rawConnect(t, gateway);
      const answer = readUntilClose(socket);
      socket.write(serializeSSLRequest());
      await once(socket, 'data');
      socket.write(startupBytes(['user', 'app'], true));
      assert.equal((await answer).toString('latin1'), 'S');
    }),
  );

  await t.test('a client that connects and says nothing is closed within the handshake timeout', (t) =>
    thenServes(impatient, async () => {
      const socket = await rawConnect(t, impatient);
      assert.equal((await readUntilClose(socket)).length, 0);
    }),
  );

  await t.test('a client that stops halfway through its startup packet is closed within the handshake timeout', (t) =>
    thenServes(impatient, async () => {
      const socket = await rawConnect(t, impatient);
      const answer = readUntilClose(socket);
      socket.write(startupBytes(['user', 'app', 'database', 'app'], true).subarray(0, 12));
      assert.equal((await answer).length, 0);
    }),
  );

  await t.test('a client that completes TLS then says nothing gets FATAL 57014 in TLS and is closed', (t) =>
    thenServes(impatient, async () => {
      const socket = await upgradeToTls(t, impatient, pki, tenantHost('acme'));
      const fields = errorFields(await readUntilClose(socket));
      assert.deepEqual([fields.severity, fields.code], ['FATAL', '57014']);
    }),
  );

  await t.test('a client that stops in the middle of SCRAM gets FATAL 57014 (authentication timeout)', (t) =>
    thenServes(impatient, async () => {
      const socket = await upgradeToTls(t, impatient, pki, tenantHost('acme'));
      const messages = serverMessages(socket);
      socket.write(startupBytes(['user', 'app', 'database', 'app'], true));
      assert.equal(parsed(await nextMessage(messages)).kind, 'AuthenticationSASL');
      const fields = errorFields(await nextMessage(messages));
      assert.deepEqual([fields.severity, fields.code, fields.message], ['FATAL', '57014', 'canceling authentication due to timeout']);
      assert.equal(await nextMessage(messages), undefined);
    }),
  );

  await t.test('an SSLRequest in two pieces and a StartupMessage one byte at a time are served', (t) =>
    thenServes(gateway, async () => {
      const raw = await rawConnect(t, gateway);
      const request = serializeSSLRequest();
      raw.write(request.subarray(0, 3));
      await new Promise((resolve) => setTimeout(resolve, 20));
      raw.write(request.subarray(3));
      assert.equal(((await once(raw, 'data')) as [Buffer])[0].toString('latin1'), 'S');
      const socket = connectTls({ socket: raw, servername: tenantHost('acme'), ca: pki.ca.certPem });
      t.after(() => socket.destroy());
      await once(socket, 'secureConnect');
      const messages = serverMessages(socket);
      for (const byte of startupBytes(['user', 'app', 'database', 'app'], true)) {
        socket.write(Buffer.from([byte]));
        await new Promise((resolve) => setImmediate(resolve));
      }
      assert.equal(parsed(await nextMessage(messages)).kind, 'AuthenticationSASL');
    }),
  );

  await t.test('a 9,900-byte StartupMessage (under the 10,000 limit) logs in', (t) =>
    thenServes(gateway, async () => {
      const socket = await upgradeToTls(t, gateway, pki, tenantHost('acme'));
      const { error } = await scramLogin(socket, serverMessages(socket), sizedStartup(9_900));
      assert.equal(error, undefined);
    }),
  );

  await t.test('a 10,000-byte StartupMessage without a database: a clear refusal, not an internal error', (t) =>
    thenServes(gateway, async () => {
      const socket = await upgradeToTls(t, gateway, pki, tenantHost('acme'));
      const { error } = await scramLogin(socket, serverMessages(socket), sizedStartup(10_000));
      assert.equal(error?.code, '08P01');
      assert.match(error?.message ?? '', /invalid length of startup packet/);
    }),
  );

  await t.test('direct TLS with ALPN "postgresql": SCRAM-SHA-256-PLUS and a query, end to end', (t) =>
    thenServes(gateway, async () => {
      const socket = await directTls(t, gateway, pki, ['postgresql']);
      assert.equal(socket.alpnProtocol, 'postgresql');
      const messages = serverMessages(socket);
      const { kinds, error } = await scramLogin(
        socket,
        messages,
        serializeStartupMessage({
          minorVersion: 0,
          parameters: new Map([
            ['user', 'app'],
            ['database', 'app'],
          ]),
        }),
      );
      assert.equal(error, undefined);
      assert.equal(kinds[0], 'AuthenticationOk');
      assert.ok(kinds.includes('BackendKeyData'));
      socket.write(queryMessage('select name from marker'));
      const rows: (string | null)[][] = [];
      for (let message = await nextMessage(messages); message?.type !== 'Z'; message = await nextMessage(messages)) {
        assert.ok(message, 'the connection closed before ReadyForQuery');
        assert.notEqual(message.type, 'E', 'the query failed');
        if (message.type === 'D') rows.push(dataRowValues(message.frame));
      }
      assert.deepEqual(rows, [['from-the-backend']]);
    }),
  );

  await t.test('direct TLS without ALPN: closed without a word', (t) =>
    thenServes(gateway, async () => {
      const socket = await directTls(t, gateway, pki, undefined);
      const answer = readUntilClose(socket);
      socket.write(startupBytes(['user', 'app', 'database', 'app'], true));
      assert.equal((await answer).length, 0);
    }),
  );

  await t.test('direct TLS offering only ALPN "http/1.1": the handshake is refused', (t) =>
    thenServes(gateway, async () => {
      const socket = connectTls({
        host: '127.0.0.1',
        port: gateway.address.port,
        servername: tenantHost('acme'),
        ca: pki.ca.certPem,
        ALPNProtocols: ['http/1.1'],
      });
      t.after(() => socket.destroy());
      const failed = new Promise<Error & { code?: string }>((resolve) => socket.once('error', resolve));
      const secured = once(socket, 'secureConnect').then(() => 'secure' as const);
      const outcome = await Promise.race([failed, secured]);
      // OpenSSL answers a mismatch with the no_application_protocol alert (120).
      assert.notEqual(outcome, 'secure');
      assert.match((outcome as Error & { code?: string }).code ?? '', /NO_APPLICATION_PROTOCOL/);
    }),
  );
});

/** Direct TLS: a ClientHello as the first bytes, no SSLRequest. */
async function directTls(t: TestContext, gateway: Gateway, pki: TestPki, alpn: string[] | undefined): Promise<TLSSocket> {
  const socket = connectTls({
    host: '127.0.0.1',
    port: gateway.address.port,
    servername: tenantHost('acme'),
    ca: pki.ca.certPem,
    ...(alpn === undefined ? {} : { ALPNProtocols: alpn }),
  });
  t.after(() => socket.destroy());
  socket.on('error', () => {});
  await once(socket, 'secureConnect');
  return socket;
}

/** What the gateway said after SCRAM: the messages up to ReadyForQuery, or its ErrorResponse. */
/** A normal client logs in through `gateway` and reads the backend's table. */
async function assertServes(gateway: Gateway, pki: TestPki, backend: PostgresServer): Promise<void> {
  const client = pgClient(gateway, pki, { servername: tenantHost('acme') });
  await client.connect();
  try {
    const { rows } = await client.query("select name, current_setting('port')::int as port from marker");
    assert.deepEqual(rows, [{ name: 'from-the-backend', port: backend.port }]);
  } finally {
    await client.end();
  }
}

/** A protocol 3.0 StartupMessage built by hand, so it can be wrong. */
function startupBytes(pairs: string[], terminated: boolean): Buffer {
  const body = Buffer.from(pairs.map((value) => `${value}\0`).join('') + (terminated ? '\0' : ''));
  return Buffer.concat([int32(8 + body.length), int32(0x0003_0000), body]);
}

/** A StartupMessage of exactly `size` bytes with user app and no database: application_name fills it. */
function sizedStartup(size: number): Buffer {
  const base = startupBytes(['user', 'app', 'application_name', ''], true).length;
  return startupBytes(['user', 'app', 'application_name', 'x'.repeat(size - base)], true);
}

function int32(value: number): Buffer {
  const buffer = Buffer.alloc(4);
  buffer.writeUInt32BE(value);
  return buffer;
}
