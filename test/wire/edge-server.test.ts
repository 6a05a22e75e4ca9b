// Real clients (psql on libpq 15, pg, postgres) log into a TLS server made only of libs/wire
// (scram-test-server.ts): TLS negotiation, SCRAM-SHA-256(-PLUS) with channel binding to the
// certificate chosen by SNI, PostgreSQL's refusals, and the bytes-after-SSLRequest attack.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { writeFile } from 'node:fs/promises';
import { connect as connectTcp } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { TestContext } from 'node:test';
import pg from 'pg';
import postgres from 'postgres';
import {
  TEST_DOMAIN,
  createCertificateAuthority,
  createTempDir,
  createTestPki,
  runPsql,
  type PsqlRun,
  removeTempDir,
  type TestPki,
} from '@tenantgate/testing';
import {
  createScramSecret,
  parseBackendMessage,
  serializeGSSENCRequest,
  serializeStartupMessage,
  serializeTerminate,
} from '@tenantgate/wire';
import { FrameStream } from './frame-stream.ts';
import { issueHashSignedChain } from './hash-signed-certificates.ts';
import { login, upgradeToTls, type TlsTarget } from './pg-login.ts';
import { REFUSED_CLIENT_FIRST, saslFirstReply } from './sasl-probe.ts';
import { PARAMETER_STATUS, startScramTestServer, type ScramTestServer, type ServerCertificate } from './scram-test-server.ts';
import { sslRequestFollowedBy } from './ssl-injection.ts';

const ALICE_PASSWORD = 'alice-password';
// Not in SASLprep's normal form (see scram-postgres.test.ts): libpq and pg must prepare it as we do.
const BOB_PASSWORD = 'pa\u0301ss\u00a0wo\u0308rd\u00ad\u2168';
const EDGE_HOST = `acme.${TEST_DOMAIN}`;

const RSA_HOST = 'acme.rsa.example.test';
const SHA384_HOST = 'acme.sha384.example.test';
const SHA512_HOST = 'acme.sha512.example.test';
const CHAIN_HOST = 'acme.chain.example.test';
/** Hosts whose certificate the server picks by SNI, each signed differently: their tls-server-end-point hashes differ. */
const SNI_CERTIFICATES = [
  ['RSA, sha256WithRSAEncryption', RSA_HOST],
  ['ECDSA, ecdsa-with-SHA384', SHA384_HOST],
  ['RSA, sha512WithRSAEncryption', SHA512_HOST],
  ['ECDSA from an intermediate CA (the chain is sent, the leaf is bound)', CHAIN_HOST],
] as const;

let pki: TestPki;
let server: ScramTestServer;
let caFile: string;
let caBundle: string;
let dir: string | undefined;

before(async () => {
  pki = await createTestPki();
  const rsaCa = await createCertificateAuthority({ keyAlgorithm: 'rsa-2048' });
  const intermediate = await pki.ca.issueIntermediate();
  const [rsa, sha384, sha512, chained] = await Promise.all([
    rsaCa.issueServerCertificate({ dnsNames: [RSA_HOST], keyAlgorithm: 'rsa-2048' }),
    issueHashSignedChain('ecdsa-p256', 'SHA-384', [SHA384_HOST]),
    issueHashSignedChain('rsa-2048', 'SHA-512', [SHA512_HOST]),
    intermediate.issueServerCertificate({ dnsNames: [CHAIN_HOST] }),
  ]);
  assert.notEqual(chained.chainPem, chained.certPem, 'the chain holds the intermediate');
  caBundle = [pki.ca.certPem, rsaCa.certPem, sha384.caPem, sha512.caPem].join('');
  dir = createTempDir('wire');
  caFile = join(dir, 'ca.crt');
  await writeFile(caFile, caBundle);
  const sni = new Map<string, ServerCertificate>([
    [RSA_HOST, rsa],
    [SHA384_HOST, sha384.server],
    [SHA512_HOST, sha512.server],
    [CHAIN_HOST, chained],
  ]);
  const roles = new Map([
    ['alice', await createScramSecret(ALICE_PASSWORD)],
    ['bob', await createScramSecret(BOB_PASSWORD)],
  ]);
  server = await startScramTestServer({ certificate: pki.edge, sni, roles });
});

// Hooks registered inside `before` would run as soon as it ends: the teardown lives here.
after(async () => {
  await server?.close();
  if (dir !== undefined) await removeTempDir(dir);
  assert.deepEqual(server?.errors ?? [], [], 'the test server failed on its own');
});

function target(servername = EDGE_HOST): TlsTarget {
  return { host: server.host, port: server.port, servername, ca: caBundle };
}

/** The authentication the server recorded last. */
function lastAuthentication() {
  const last = server.authentications.at(-1);
  assert.ok(last, 'the server recorded an authentication');
  return last;
}

// ---------------------------------------------------------------------------------------------
// psql

function psql(settings: Record<string, string>, password: string): Promise<PsqlRun> {
  return runPsql(
    {
      host: EDGE_HOST,
      hostaddr: server.host,
      port: String(server.port),
      dbname: 'x',
      user: 'alice',
      sslmode: 'verify-full',
      sslrootcert: caFile,
      connect_timeout: '5',
      ...settings,
    },
    { password },
  );
}

describe('psql (libpq 15)', () => {
  test('channel_binding=require: SCRAM-SHA-256-PLUS over the edge certificate chosen by SNI', async () => {
    const run = await psql({ channel_binding: 'require' }, ALICE_PASSWORD);
    assert.deepEqual(run, { code: 0, stdout: 'alice\n', stderr: '' });
    assert.deepEqual(lastAuthentication(), { user: 'alice', mechanism: 'SCRAM-SHA-256-PLUS', servername: EDGE_HOST, outcome: 'ok' });
  });

  test('channel_binding=disable: SCRAM-SHA-256', async () => {
    const run = await psql({ channel_binding: 'disable' }, ALICE_PASSWORD);
    assert.deepEqual(run, { code: 0, stdout: 'alice\n', stderr: '' });
    assert.equal(lastAuthentication().mechanism, 'SCRAM-SHA-256');
  });

  for (const [signature, host] of SNI_CERTIFICATES) {
    test(`channel_binding=require, certificate: ${signature}`, async () => {
      const run = await psql({ host, channel_binding: 'require' }, ALICE_PASSWORD);
      assert.deepEqual(run, { code: 0, stdout: 'alice\n', stderr: '' });
      assert.deepEqual(lastAuthentication(), { user: 'alice', mechanism: 'SCRAM-SHA-256-PLUS', servername: host, outcome: 'ok' });
    });
  }

  test("a non-ASCII password is SASLprep'd by libpq as by libs/wire", async () => {
    const run = await psql({ user: 'bob', channel_binding: 'require' }, BOB_PASSWORD);
    assert.deepEqual(run, { code: 0, stdout: 'bob\n', stderr: '' });
  });

  test("a wrong password: exit code 2 and PostgreSQL's message", async () => {
    const run = await psql({}, 'wrong password');
    assert.equal(run.code, 2);
    assert.equal(run.stdout, '');
    assert.match(run.stderr, /FATAL: {2}password authentication failed for user "alice"\n$/);
    assert.deepEqual(lastAuthentication(), { user: 'alice', mechanism: 'SCRAM-SHA-256-PLUS', servername: EDGE_HOST, outcome: '28P01' });
  });

  test('an unknown role fails exactly like a wrong password', async () => {
    const [wrongPassword, unknownRole] = [
      await psql({ user: 'alice' }, 'wrong password'),
      await psql({ user: 'mallory' }, 'wrong password'),
    ];
    assert.equal(unknownRole.code, 2);
    assert.equal(unknownRole.stderr, wrongPassword.stderr.replace('"alice"', '"mallory"'));
    assert.match(unknownRole.stderr, /password authentication failed for user "mallory"/);
  });

  test('without TLS: FATAL 28000 "TLS is required"', async () => {
    const run = await psql({ sslmode: 'disable' }, ALICE_PASSWORD);
    assert.equal(run.code, 2);
    assert.match(run.stderr, /FATAL: {2}TLS is required\n/);
  });
});

// ---------------------------------------------------------------------------------------------
// node-postgres

async function pgQuery(t: TestContext, config: pg.ClientConfig, text: string, values?: unknown[]): Promise<unknown[]> {
  const client = new pg.Client({
    host: server.host,
    port: server.port,
    database: 'x',
    ssl: { ca: caBundle, servername: EDGE_HOST },
    ...config,
  });
  t.after(() => client.end());
  await client.connect();
  return (await client.query(text, values)).rows;
}

describe('pg (node-postgres)', () => {
  test('logs in with SCRAM-SHA-256 by default (it binds only when asked)', async (t) => {
    assert.deepEqual(await pgQuery(t, { user: 'alice', password: ALICE_PASSWORD }, 'select 1'), [{ user: 'alice' }]);
    assert.equal(lastAuthentication().mechanism, 'SCRAM-SHA-256');
  });

  for (const [signature, host] of [['ECDSA, ecdsa-with-SHA256 (the edge wildcard)', EDGE_HOST], ...SNI_CERTIFICATES] as const) {
    test(`enableChannelBinding: SCRAM-SHA-256-PLUS, certificate: ${signature}`, async (t) => {
      const config = { user: 'alice', password: ALICE_PASSWORD, enableChannelBinding: true, ssl: { ca: caBundle, servername: host } };
      assert.deepEqual(await pgQuery(t, config, 'select 1'), [{ user: 'alice' }]);
      assert.deepEqual(lastAuthentication(), { user: 'alice', mechanism: 'SCRAM-SHA-256-PLUS', servername: host, outcome: 'ok' });
    });
  }

  test('a non-ASCII password', async (t) => {
    assert.deepEqual(await pgQuery(t, { user: 'bob', password: BOB_PASSWORD }, 'select 1'), [{ user: 'bob' }]);
  });

  test('a wrong password or an unknown role: 28P01', async () => {
    for (const user of ['alice', 'mallory']) {
      const client = new pg.Client({
        host: server.host,
        port: server.port,
        user,
        password: 'wrong',
        ssl: { ca: caBundle, servername: EDGE_HOST },
      });
      await assert.rejects(client.connect(), {
        code: '28P01',
        severity: 'FATAL',
        message: `password authentication failed for user "${user}"`,
      });
    }
  });

  test('a parameterized query (extended protocol) is refused with 0A000; the session goes on', async (t) => {
    const client = new pg.Client({
      host: server.host,
      port: server.port,
      user: 'alice',
      password: ALICE_PASSWORD,
      ssl: { ca: caBundle, servername: EDGE_HOST },
    });
    t.after(() => client.end());
    await client.connect();
    await assert.rejects(client.query('select $1::text', ['x']), { code: '0A000' });
    assert.deepEqual((await client.query('select 1')).rows, [{ user: 'alice' }]);
  });
});

// ---------------------------------------------------------------------------------------------
// postgres (porsager): SCRAM-SHA-256 only, no channel binding

describe('postgres (porsager)', () => {
  function connect(t: TestContext, user: string, password: string) {
    const sql = postgres({
      host: server.host,
      port: server.port,
      database: 'x',
      user,
      password,
      ssl: { ca: caBundle, servername: EDGE_HOST },
      fetch_types: false,
      max: 1,
      connect_timeout: 5,
    });
    t.after(() => sql.end({ timeout: 1 }));
    return sql;
  }

  test('logs in with SCRAM-SHA-256 and runs a simple query', async (t) => {
    const sql = connect(t, 'alice', ALICE_PASSWORD);
    assert.deepEqual([...(await sql.unsafe('select 1'))], [{ user: 'alice' }]);
    assert.equal(lastAuthentication().mechanism, 'SCRAM-SHA-256');
  });

  test('a wrong password: 28P01', async (t) => {
    const sql = connect(t, 'alice', 'wrong');
    await assert.rejects(sql.unsafe('select 1'), { code: '28P01', message: 'password authentication failed for user "alice"' });
  });
});

// ---------------------------------------------------------------------------------------------
// The wire itself

describe('on the wire', () => {
  test('our own client logs in, queries, and Terminate closes the connection', async (t) => {
    const session = await login({ ...target(), user: 'alice', credentials: { password: ALICE_PASSWORD }, channelBinding: 'require' });
    t.after(() => session.socket.destroy());
    assert.equal(session.mechanism, 'SCRAM-SHA-256-PLUS');
    assert.equal(session.serverVerified, true);
    assert.deepEqual(session.parameters, PARAMETER_STATUS);
    assert.deepEqual(await session.query('select current_user'), { columns: ['user'], rows: [['alice']], command: 'SELECT 1' });
    // Terminate without closing our side: the server must be the one that ends the connection.
    const ended = once(session.socket, 'end', { signal: AbortSignal.timeout(5_000) });
    session.socket.write(serializeTerminate());
    await ended;
  });

  test('a _pq_ protocol option is answered with NegotiateProtocolVersion, and the login goes on', async (t) => {
    const protocolOptions = new Map([['_pq_.test_option', 'on']]);
    const session = await login({ ...target(), user: 'alice', credentials: { password: ALICE_PASSWORD }, protocolOptions });
    t.after(() => session.close());
    assert.deepEqual(session.negotiation?.unrecognizedOptions, ['_pq_.test_option']);
    assert.deepEqual((await session.query('select 1')).rows, [['alice']]);
  });

  test("bytes sent with the SSLRequest: 'S', then FATAL 08P01 once TLS is up, then close", async () => {
    const recorded = server.authentications.length;
    const outcome = await sslRequestFollowedBy(target(), Buffer.from('Q\0\0\0\x0dselect 1\0'));
    assert.equal(outcome.answer, 'S');
    assert.equal(outcome.messages.length, 1);
    const [message] = outcome.messages;
    assert.equal(message?.kind, 'ErrorResponse');
    assert.equal(message.fields.severity, 'FATAL');
    assert.equal(message.fields.code, '08P01');
    assert.equal(message.fields.message, 'received unencrypted data after SSL request');
    assert.equal(server.authentications.length, recorded, 'the injected bytes were never read as a StartupMessage');
  });

  test("GSSENCRequest is answered 'N' and the client may go on with SSLRequest", async (t) => {
    const socket = connectTcp({ host: server.host, port: server.port });
    t.after(() => socket.destroy());
    await once(socket, 'connect');
    socket.write(serializeGSSENCRequest());
    const [reply] = (await once(socket, 'data')) as [Buffer];
    assert.deepEqual(reply, Buffer.from('N'));
    const tlsSocket = await upgradeToTls(socket, target());
    t.after(() => tlsSocket.destroy());
    const frames = new FrameStream(tlsSocket);
    tlsSocket.write(serializeStartupMessage({ minorVersion: 0, parameters: new Map([['user', 'alice']]) }));
    assert.deepEqual(parseBackendMessage(await frames.next()), {
      kind: 'AuthenticationSASL',
      mechanisms: ['SCRAM-SHA-256-PLUS', 'SCRAM-SHA-256'],
    });
  });

  test('an unknown role shows a stable salt of its own, and the iteration count of real roles', async () => {
    async function serverFirst(user: string): Promise<Map<string, string>> {
      const { reply } = await saslFirstReply(target(), user, 'SCRAM-SHA-256', 'n,,n=,r=clientnonce');
      assert.equal(reply.kind, 'AuthenticationSASLContinue');
      return new Map(
        reply.data
          .toString('latin1')
          .split(',')
          .map((field) => [field[0]!, field.slice(2)]),
      );
    }
    const [mallory, malloryAgain, trudy, alice] = [
      await serverFirst('mallory'),
      await serverFirst('mallory'),
      await serverFirst('trudy'),
      await serverFirst('alice'),
    ];
    assert.equal(mallory.get('s'), malloryAgain.get('s'));
    assert.notEqual(mallory.get('s'), trudy.get('s'));
    assert.equal(Buffer.from(mallory.get('s')!, 'base64').length, Buffer.from(alice.get('s')!, 'base64').length);
    assert.equal(mallory.get('i'), alice.get('i'));
    assert.match(mallory.get('r')!, /^clientnonce.{24}$/);
  });
});

describe("malformed client-first-messages are refused with PostgreSQL's SQLSTATEs", () => {
  for (const refused of REFUSED_CLIENT_FIRST) {
    test(refused.what, async () => {
      const { offered, reply } = await saslFirstReply(target(), 'alice', refused.mechanism, refused.clientFirst);
      assert.deepEqual(offered, ['SCRAM-SHA-256-PLUS', 'SCRAM-SHA-256']);
      assert.equal(reply.kind, 'ErrorResponse');
      assert.equal(reply.fields.severity, 'FATAL');
      assert.equal(reply.fields.code, refused.code);
      assert.equal(lastAuthentication().outcome, refused.code);
    });
  }
});
