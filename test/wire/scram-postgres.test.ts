// libs/wire's SCRAM against a real PostgreSQL 15: secrets PostgreSQL made verify our client,
// and our client (pg-login.ts, made of nothing but libs/wire) logs into PostgreSQL with a
// password, with a ClientKey recovered at the gateway, and with channel binding.
import assert from 'node:assert/strict';
import { createHmac, pbkdf2Sync } from 'node:crypto';
import { once } from 'node:events';
import { connect as connectTcp } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import type { TestContext } from 'node:test';
import { createTestPki, startPostgres, type PostgresServer, type TestPki } from '@tenantgate/testing';
import {
  ScramAuthError,
  ScramClientExchange,
  ScramServerExchange,
  createScramSecret,
  formatScramSecret,
  parseBackendMessage,
  parseScramSecret,
  saslprep,
  serializeCancelRequest,
  serializeNegotiateProtocolVersion,
  serializeStartupMessage,
  tlsServerEndPoint,
  type ScramSecret,
} from '@tenantgate/wire';
import { FrameStream } from './frame-stream.ts';
import { login, PgServerError, requestTls, type Credentials, type LoginOptions, type PgSession, type TlsTarget } from './pg-login.ts';
import { REFUSED_CLIENT_FIRST, saslFirstReply } from './sasl-probe.ts';
import { sslRequestFollowedBy } from './ssl-injection.ts';

const ALICE_PASSWORD = 'correct horse battery staple';
// SASLprep turns this into 'páss wördIX': the NBSP becomes a space, the soft hyphen goes,
// combining marks compose and Ⅸ becomes IX (NFKC). PostgreSQL hashes that form.
const BOB_PASSWORD = 'pa\u0301ss\u00a0wo\u0308rd\u00ad\u2168';
const BOB_PASSWORD_PREPARED = 'páss wördIX';
const MOCK_KEY = Buffer.alloc(32, 7);

/**
 * Passwords at SASLprep's edges (RFC 4013 as PostgreSQL's saslprep.c applies it): some are
 * normalized, some are refused by SASLprep and then hashed as they are. Either way our secret
 * and our proof must be the ones PostgreSQL computes.
 */
const SASLPREP_PASSWORDS = [
  ['ligature and roman numeral (NFKC: fiIX)', '\ufb01\u2168'],
  ['ideographic space and zero-width space (both become spaces)', '\u3000pw\u200b'],
  ['combining marks out of canonical order', 'e\u0301\u0327'],
  ['right-to-left only (allowed)', '\u05d0\u05d1'],
  ['an ASCII control character (prohibited: used as is)', '\u00e9\u0007'],
  ['a code point unassigned in Unicode 3.2 (used as is)', '\u0221x'],
  ['an emoji, unassigned in Unicode 3.2 (used as is)', '\u{1f600}pw'],
  ['right-to-left mixed with left-to-right (bidi rule: used as is)', '\u05d0a'],
  ['soft hyphens only (empty once mapped: used as is)', '\u00ad\u00ad'],
] as const;

let pki: TestPki;
let db: PostgresServer;

before(async () => {
  pki = await createTestPki();
  db = await startPostgres({
    serverCert: pki.backend.chainPem,
    serverKey: pki.backend.keyPem,
    hba: ['hostssl all all 127.0.0.1/32 scram-sha-256'],
    roles: [
      { name: 'alice', password: ALICE_PASSWORD },
      { name: 'bob', password: BOB_PASSWORD },
      ...SASLPREP_PASSWORDS.map(([, password], index) => ({ name: `saslprep_${index}`, password })),
    ],
  });
});
after(() => db?.stop());

async function secretOf(role: string): Promise<string> {
  const rows = await db.sql<{ rolpassword: string }>('SELECT rolpassword FROM pg_authid WHERE rolname = $1', [role]);
  assert.equal(rows.length, 1, `role ${role} exists`);
  return rows[0]!.rolpassword;
}

/** The backend certificate names 127.0.0.1 and localhost; SNI cannot carry an IP address. */
function target(): TlsTarget {
  return { host: db.host, port: db.port, servername: 'localhost', ca: pki.ca.certPem };
}

type SessionOptions = Partial<Pick<LoginOptions, 'channelBinding' | 'minorVersion' | 'protocolOptions'>>;

async function loginAs(t: TestContext, user: string, credentials: Credentials, options: SessionOptions = {}): Promise<PgSession> {
  const session = await login({ ...target(), user, credentials, ...options });
  t.after(() => session.close());
  return session;
}

async function currentUser(session: PgSession): Promise<string | null> {
  const result = await session.query('SELECT current_user');
  assert.deepEqual(result.columns, ['current_user']);
  assert.equal(result.command, 'SELECT 1');
  return result.rows[0]![0]!;
}

/** Both sides of an exchange in memory, as the gateway runs its server side against a client. */
async function exchange(server: ScramServerExchange, client: ScramClientExchange): Promise<void> {
  const { mechanism, message } = client.start(server.mechanisms());
  const serverFirst = server.handleClientFirst(mechanism, message);
  const clientFinal = await client.handleServerFirst(serverFirst);
  client.handleServerFinal(server.handleClientFinal(clientFinal));
}

/** ClientKey := HMAC(SaltedPassword, "Client Key") (RFC 5802 §3), from the password itself. */
function clientKeyOf(password: string, secret: ScramSecret): Buffer {
  const salted = pbkdf2Sync(Buffer.from(saslprep(password), 'utf8'), secret.salt, secret.iterations, 32, 'sha256');
  return createHmac('sha256', salted).update('Client Key').digest();
}

describe('secrets made by PostgreSQL', () => {
  test('parse, format back to the same text, and match createScramSecret with their salt', async () => {
    for (const [role, password] of [
      ['alice', ALICE_PASSWORD],
      ['bob', BOB_PASSWORD],
    ] as const) {
      const text = await secretOf(role);
      const secret = parseScramSecret(text);
      assert.equal(secret.iterations, 4096);
      assert.equal(secret.salt.length, 16);
      assert.equal(formatScramSecret(secret), text);
      assert.equal(await createScramSecret(password, { salt: secret.salt, iterations: secret.iterations }), text, role);
    }
  });

  for (const channelBinding of ['disable', 'require'] as const) {
    test(`ScramServerExchange verifies our client's password (channel binding ${channelBinding})`, async () => {
      const secret = parseScramSecret(await secretOf('alice'));
      const endPoint = tlsServerEndPoint(pki.edge.cert);
      const server = new ScramServerExchange({ secret, role: 'alice', mockKey: MOCK_KEY, tlsServerEndPoint: endPoint });
      const client = new ScramClientExchange({ password: ALICE_PASSWORD, channelBinding, peerCertificate: pki.edge.cert });
      await exchange(server, client);
      assert.equal(server.state, 'succeeded');
      assert.equal(client.serverVerified, true);
      assert.deepEqual(server.clientKey, clientKeyOf(ALICE_PASSWORD, secret));
    });
  }

  test('ScramServerExchange refuses a wrong password with 28P01', async () => {
    const secret = parseScramSecret(await secretOf('alice'));
    const server = new ScramServerExchange({ secret, role: 'alice', mockKey: MOCK_KEY });
    const client = new ScramClientExchange({ password: 'not the password' });
    await assert.rejects(exchange(server, client), (error: unknown) => {
      assert.ok(error instanceof ScramAuthError);
      assert.equal(error.sqlState, '28P01');
      return true;
    });
    assert.equal(server.state, 'failed');
  });

  test('the SASLprep form of a non-ASCII password verifies like the password itself', async () => {
    const secret = parseScramSecret(await secretOf('bob'));
    for (const password of [BOB_PASSWORD, BOB_PASSWORD_PREPARED]) {
      const server = new ScramServerExchange({ secret, role: 'bob', mockKey: MOCK_KEY });
      await exchange(server, new ScramClientExchange({ password }));
      assert.deepEqual(server.clientKey, clientKeyOf(BOB_PASSWORD, secret));
    }
  });
});

describe('SASLprep at its edges agrees with PostgreSQL', () => {
  SASLPREP_PASSWORDS.forEach(([what, password], index) => {
    test(what, async (t) => {
      const role = `saslprep_${index}`;
      const text = await secretOf(role);
      const { salt, iterations } = parseScramSecret(text);
      assert.equal(await createScramSecret(password, { salt, iterations }), text, 'the secret PostgreSQL stored');
      const session = await loginAs(t, role, { password });
      assert.equal(await currentUser(session), role);
    });
  });
});

describe('our client logs into PostgreSQL', () => {
  test('with a password: SCRAM-SHA-256-PLUS by default, and the server proves itself', async (t) => {
    const session = await loginAs(t, 'alice', { password: ALICE_PASSWORD });
    assert.equal(session.mechanism, 'SCRAM-SHA-256-PLUS');
    assert.equal(session.serverVerified, true);
    assert.equal(session.parameters.get('server_version')?.split('.')[0], '15');
    assert.equal(session.backendKey?.secretKey.length, 4);
    assert.equal(await currentUser(session), 'alice');
    const ssl = await session.query('SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()');
    assert.deepEqual(ssl.rows, [['t']]);
  });

  test('with channel binding disabled: SCRAM-SHA-256', async (t) => {
    const session = await loginAs(t, 'alice', { password: ALICE_PASSWORD }, { channelBinding: 'disable' });
    assert.equal(session.mechanism, 'SCRAM-SHA-256');
    assert.equal(await currentUser(session), 'alice');
  });

  test('with channel binding required, bound to the backend certificate', async (t) => {
    const session = await loginAs(t, 'alice', { password: ALICE_PASSWORD }, { channelBinding: 'require' });
    assert.equal(session.mechanism, 'SCRAM-SHA-256-PLUS');
    assert.equal(await currentUser(session), 'alice');
  });

  test('binding data of another certificate is refused by PostgreSQL', async () => {
    const attempt = login({
      ...target(),
      user: 'alice',
      credentials: { password: ALICE_PASSWORD },
      channelBinding: 'require',
      bindingCertificate: pki.edge.cert,
    });
    await assert.rejects(attempt, { name: 'PgServerError', code: '28000', message: 'SCRAM channel binding check failed' });
  });

  for (const withServerKey of [true, false]) {
    test(`with the ClientKey a gateway recovered${withServerKey ? ' and the ServerKey' : ''}`, async (t) => {
      const secret = parseScramSecret(await secretOf('alice'));
      const gateway = new ScramServerExchange({ secret, role: 'alice', mockKey: MOCK_KEY });
      await exchange(gateway, new ScramClientExchange({ password: ALICE_PASSWORD }));
      const credentials = withServerKey ? { clientKey: gateway.clientKey, serverKey: secret.serverKey } : { clientKey: gateway.clientKey };
      const session = await loginAs(t, 'alice', credentials, { channelBinding: 'require' });
      assert.equal(session.serverVerified, withServerKey);
      assert.equal(await currentUser(session), 'alice');
    });
  }

  test('a wrong password surfaces as FATAL 28P01', async () => {
    for (const credentials of [{ password: 'not the password' }, { clientKey: Buffer.alloc(32, 1) }]) {
      const attempt = login({ ...target(), user: 'alice', credentials });
      await assert.rejects(attempt, (error: unknown) => {
        assert.ok(error instanceof PgServerError);
        assert.equal(error.code, '28P01');
        assert.equal(error.severity, 'FATAL');
        assert.equal(error.message, 'password authentication failed for user "alice"');
        return true;
      });
    }
  });

  test('a role with a non-ASCII password, by the password and by its SASLprep form', async (t) => {
    for (const password of [BOB_PASSWORD, BOB_PASSWORD_PREPARED]) {
      const session = await loginAs(t, 'bob', { password }, { channelBinding: 'require' });
      assert.equal(await currentUser(session), 'bob');
    }
  });
});

test('PostgreSQL answers bytes injected after SSLRequest with 08P01 once TLS is up, then closes', async () => {
  const outcome = await sslRequestFollowedBy(target(), Buffer.from('Q\0\0\0\x0dselect 1\0'));
  assert.equal(outcome.answer, 'S');
  assert.equal(outcome.messages.length, 1);
  const [message] = outcome.messages;
  assert.equal(message?.kind, 'ErrorResponse');
  assert.equal(message.fields.code, '08P01');
  assert.equal(message.fields.message, 'received unencrypted data after SSL request');
});

describe('PostgreSQL refuses malformed client-first-messages (the reference for edge-server.test.ts)', () => {
  for (const refused of REFUSED_CLIENT_FIRST) {
    test(refused.what, async () => {
      const { offered, reply } = await saslFirstReply(target(), 'alice', refused.mechanism, refused.clientFirst);
      assert.deepEqual(offered, ['SCRAM-SHA-256-PLUS', 'SCRAM-SHA-256']);
      assert.equal(reply.kind, 'ErrorResponse');
      assert.equal(reply.fields.severity, 'FATAL');
      assert.equal(reply.fields.code, refused.code);
    });
  }
});

describe('protocol version negotiation with PostgreSQL 15', () => {
  const askFor32 = { minorVersion: 2, protocolOptions: new Map([['_pq_.test_option', 'on']]) };

  test('asked for 3.2 and a _pq_ option, it answers NegotiateProtocolVersion and the login goes on', async (t) => {
    const session = await loginAs(t, 'alice', { password: ALICE_PASSWORD }, askFor32);
    assert.equal(session.negotiation?.kind, 'NegotiateProtocolVersion');
    assert.deepEqual(session.negotiation.unrecognizedOptions, ['_pq_.test_option']);
    assert.equal(await currentUser(session), 'alice');
  });

  test('NegotiateProtocolVersion carries a whole version (3.0 = 0x00030000): parsed and written as PostgreSQL does', async (t) => {
    const socket = await requestTls(target());
    t.after(() => socket.destroy());
    const frames = new FrameStream(socket);
    socket.write(serializeStartupMessage({ minorVersion: 2, parameters: new Map([['user', 'alice']]) }));
    const frame = await frames.next();
    assert.deepEqual(parseBackendMessage(frame), { kind: 'NegotiateProtocolVersion', newestMinorVersion: 0, unrecognizedOptions: [] });
    assert.deepEqual(serializeNegotiateProtocolVersion(0, []), frame, 'the bytes PostgreSQL sends for "3.0, no options"');
  });
});

test('a CancelRequest with the BackendKeyData we parsed cancels a running query (57014)', async (t) => {
  const session = await loginAs(t, 'alice', { password: ALICE_PASSWORD });
  const key = session.backendKey;
  assert.ok(key);
  const running = session.query('SELECT pg_sleep(30)');
  await waitUntilActive(key.processId);
  const socket = connectTcp({ host: db.host, port: db.port });
  t.after(() => socket.destroy());
  await once(socket, 'connect');
  socket.end(serializeCancelRequest(key.processId, key.secretKey));
  await assert.rejects(running, { name: 'PgServerError', code: '57014', message: 'canceling statement due to user request' });
  assert.equal(await currentUser(session), 'alice', 'the session goes on');
});

async function waitUntilActive(pid: number): Promise<void> {
  for (let attempt = 0; attempt < 500; attempt++) {
    const rows = await db.sql('SELECT 1 FROM pg_stat_activity WHERE pid = $1 AND state = $2', [pid, 'active']);
    if (rows.length === 1) return;
    await sleep(10);
  }
  throw new Error(`backend ${pid} never became active`);
}
