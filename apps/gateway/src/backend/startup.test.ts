// The startup phase against stand-in backends: what a real PostgreSQL does rarely or never
// (split messages, bytes after ReadyForQuery, md5, odd messages, silence, session tickets).
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { test, type TestContext } from 'node:test';
import type { TLSSocket, TlsOptions } from 'node:tls';
import { createTestPki } from '@tenantgate/testing';
import {
  AuthenticationCode,
  BackendMessageType,
  FrameWriter,
  ScramClientExchange,
  ScramServerExchange,
  buildNoticeResponse,
  createScramSecret,
  parseSASLInitialResponse,
  parseSASLResponse,
  parseScramSecret,
  scramMechanisms,
  serializeAuthenticationMD5Password,
  serializeAuthenticationSASL,
  serializeAuthenticationSASLContinue,
  serializeAuthenticationSASLFinal,
  serializeErrorResponse,
  serializeParameterStatus,
  tlsServerEndPoint,
} from '@tenantgate/wire';
import { openBackend, startBackendSession, type BackendAuth, type StartBackendSessionOptions } from './connect.ts';
import {
  BackendAbortedError,
  BackendAuthUnsupportedError,
  BackendClientCertificateRefusedError,
  BackendClosedError,
  BackendProtocolError,
  BackendStartupError,
  BackendTimeoutError,
} from '../errors.ts';
import { BackendTlsContexts, TlsSessionCache } from './tls.ts';
import {
  ClientMessages,
  answerReady,
  readyMessages,
  startFakeTlsBackend,
  type FakeTlsBackend,
  type OnStartup,
} from '../testing/backend-servers.ts';

const pki = await createTestPki();
const gateway = await pki.client('gateway');
const contexts = new BackendTlsContexts();
const secureContext = contexts.get({ caPem: pki.ca.certPem, certPem: gateway.chainPem, keyPem: gateway.keyPem });
const NO_AUTH: BackendAuth = { kind: 'none' };

function fakeBackend(t: TestContext, onStartup: OnStartup, tls: TlsOptions = {}): Promise<FakeTlsBackend> {
  return startFakeTlsBackend(t, { cert: pki.backend.chainPem, key: pki.backend.keyPem, ...tls }, onStartup);
}

async function start(fake: FakeTlsBackend, options: Partial<StartBackendSessionOptions> = {}, sessionCache?: TlsSessionCache) {
  const opened = await openBackend({
    host: '127.0.0.1',
    port: fake.port,
    serverName: 'localhost',
    secureContext,
    sessionCache,
    connectTimeoutMs: 5000,
  });
  return startBackendSession(opened, {
    parameters: new Map([
      ['user', 'app'],
      ['database', 'app'],
    ]),
    auth: NO_AUTH,
    timeoutMs: 5000,
    ...options,
  });
}

/** Writes `bytes` one byte per turn of the event loop: every message crosses chunks. */
function dribble(socket: TLSSocket, bytes: Buffer): void {
  let i = 0;
  const next = (): void => {
    if (i >= bytes.length || socket.destroyed) return;
    socket.write(bytes.subarray(i, ++i), () => setImmediate(next));
  };
  next();
}

test('the StartupMessage carries the parameters in order; protocol options go after them', async (t) => {
  const fake = await fakeBackend(t, answerReady());
  const session = await start(fake, {
    parameters: [
      ['user', 'app_acme'],
      ['database', 'app'],
      ['application_name', 'psql'],
      ['_pq_.x', '1'],
    ],
  });
  const [startup] = fake.startups;
  assert.equal(startup.minorVersion, 0);
  assert.deepEqual(
    [...startup.parameters],
    [
      ['user', 'app_acme'],
      ['database', 'app'],
      ['application_name', 'psql'],
    ],
  );
  assert.deepEqual([...startup.protocolOptions], [['_pq_.x', '1']]);
  session.socket.destroy();
  await fake.waitForNoConnections();
});

test("a StartupMessage that cannot be written is the caller's mistake, and the connection goes", async (t) => {
  const fake = await fakeBackend(t, answerReady());
  const opened = await openBackend({ host: '127.0.0.1', port: fake.port, serverName: 'localhost', secureContext, connectTimeoutMs: 5000 });
  await assert.rejects(startBackendSession(opened, { parameters: new Map([['database', 'app']]), auth: NO_AUTH, timeoutMs: 5000 }), {
    name: 'ProtocolError',
    message: 'cannot encode StartupMessage: no user',
  });
  assert.ok(opened.socket.destroyed);
  await fake.waitForNoConnections();
  assert.equal(fake.startups.length, 0);
});

test('messages split across every chunk boundary, and bytes after ReadyForQuery are handed over', async (t) => {
  const after = buildNoticeResponse({ severity: 'NOTICE', code: '00000', message: 'after ready' });
  const notice = buildNoticeResponse({ severity: 'WARNING', code: '01000', message: 'during startup' });
  const fake = await fakeBackend(t, (socket) => {
    const ready = readyMessages();
    const readyForQueryAt = ready.length - 6;
    dribble(socket, Buffer.concat([notice, ready.subarray(0, readyForQueryAt)]));
    setTimeout(() => socket.write(Buffer.concat([ready.subarray(readyForQueryAt), after])), 100);
  });
  const session = await start(fake);
  assert.deepEqual(session.parameterStatus, [
    ['server_version', '15.0 (fake)'],
    ['client_encoding', 'UTF8'],
  ]);
  assert.deepEqual(session.backendKey, { processId: 4242, secretKey: Buffer.from([1, 2, 3, 4]) });
  assert.equal(session.notices.length, 1);
  assert.equal(session.notices[0].message, 'during startup');
  assert.deepEqual(session.leftover, after, 'the splice must forward these first');
  assert.equal(session.socket.isPaused(), true, 'nothing more is read until the splice takes over');
  session.socket.destroy();
  await fake.waitForNoConnections();
});

test('md5 and GSSAPI requests are refused: the gateway never has the password', async (t) => {
  const md5 = await fakeBackend(t, (socket) => socket.write(serializeAuthenticationMD5Password(Buffer.from('salt'))));
  await assert.rejects(start(md5, { auth: { kind: 'scram-key', clientKey: randomBytes(32) } }), (error: unknown) => {
    assert.ok(error instanceof BackendAuthUnsupportedError);
    assert.equal(error.code, 'TG_ERR_BACKEND_AUTH_UNSUPPORTED');
    assert.equal(
      error.message,
      "the tenant's database asks for md5 authentication, which the gateway cannot answer (it must use scram-sha-256 or cert)",
    );
    return true;
  });
  await md5.waitForNoConnections();
  const gss = FrameWriter.message(BackendMessageType.Authentication, 4).int32(AuthenticationCode.GSS).finish();
  const gssBackend = await fakeBackend(t, (socket) => socket.write(gss));
  await assert.rejects(start(gssBackend), { code: 'TG_ERR_BACKEND_AUTH_UNSUPPORTED', message: /asks for GSSAPI authentication/ });
  await gssBackend.waitForNoConnections();
});

test('a message out of place, or a malformed one, is a protocol error', async (t) => {
  const early = await fakeBackend(t, (socket) => socket.write(serializeParameterStatus('server_version', '15')));
  await assert.rejects(start(early), (error: unknown) => {
    assert.ok(error instanceof BackendProtocolError);
    assert.equal(error.message, "the tenant's database sent an invalid reply");
    assert.match(error.logDetail, /unexpected ParameterStatus in startup state awaiting-auth-request/);
    return true;
  });
  const dataRow = Buffer.from([0x44, 0, 0, 0, 6, 0, 0]);
  const query = await fakeBackend(t, (socket) => socket.write(Buffer.concat([readyMessages().subarray(0, 9), dataRow])));
  await assert.rejects(start(query), BackendProtocolError);
  const huge = Buffer.from([0x53, 0x7f, 0xff, 0xff, 0xff]);
  const lying = await fakeBackend(t, (socket) => socket.write(huge));
  await assert.rejects(start(lying), BackendProtocolError);
  await Promise.all([early.waitForNoConnections(), query.waitForNoConnections(), lying.waitForNoConnections()]);
});

test("an ErrorResponse after some messages is the backend's error, not a close", async (t) => {
  const fatal = serializeErrorResponse({ severity: 'FATAL', code: '53300', message: 'sorry, too many clients already' });
  const fake = await fakeBackend(t, (socket) => socket.end(Buffer.concat([readyMessages().subarray(0, 9), fatal])));
  await assert.rejects(start(fake), (error: unknown) => {
    assert.ok(error instanceof BackendStartupError);
    assert.equal(error.sqlState, '53300');
    assert.equal(error.message, 'sorry, too many clients already');
    return true;
  });
  await fake.waitForNoConnections();
});

test('a backend that goes quiet after the StartupMessage times out; the caller may abandon it too', async (t) => {
  const fake = await fakeBackend(t, (socket) => socket.resume());
  await assert.rejects(start(fake, { timeoutMs: 100 }), (error: unknown) => {
    assert.ok(error instanceof BackendTimeoutError);
    assert.equal(error.phase, 'startup');
    assert.equal(error.message, "timed out starting a session on the tenant's database");
    return true;
  });
  await fake.waitForNoConnections();
  const controller = new AbortController();
  setTimeout(() => controller.abort(), 50);
  await assert.rejects(start(fake, { signal: controller.signal }), BackendAbortedError);
  await fake.waitForNoConnections();
});

test('a close after some messages is a close; a close without a word right after TLS 1.3 is read as a refused certificate', async (t) => {
  const partial = await fakeBackend(t, (socket) => socket.end(readyMessages().subarray(0, 9)));
  await assert.rejects(start(partial), (error: unknown) => {
    assert.ok(error instanceof BackendClosedError);
    assert.equal(error.message, "the tenant's database closed the connection before the session started");
    return true;
  });
  const mute = await fakeBackend(t, (socket) => socket.end());
  await assert.rejects(start(mute), (error: unknown) => {
    assert.ok(error instanceof BackendClientCertificateRefusedError);
    assert.match(error.logDetail, /right after the TLS 1\.3 handshake/);
    return true;
  });
  const tls12 = await fakeBackend(t, (socket) => socket.end(), { maxVersion: 'TLSv1.2' });
  await assert.rejects(start(tls12), BackendClosedError, 'under TLS 1.2 the server judged our certificate inside the handshake');
  await Promise.all([partial.waitForNoConnections(), mute.waitForNoConnections(), tls12.waitForNoConnections()]);
});

/** A stand-in for PostgreSQL's SCRAM: the role's secret, PLUS bound to the fake's certificate. */
function scramBackend(secret: string): OnStartup {
  return (socket) => {
    const exchange = new ScramServerExchange({
      secret: parseScramSecret(secret),
      role: 'app',
      mockKey: randomBytes(16),
      tlsServerEndPoint: tlsServerEndPoint(pki.backend.cert),
    });
    const messages = new ClientMessages(socket);
    socket.write(serializeAuthenticationSASL(scramMechanisms(true)));
    void (async () => {
      const first = parseSASLInitialResponse((await messages.next()) as Buffer);
      socket.write(
        serializeAuthenticationSASLContinue(Buffer.from(exchange.handleClientFirst(first.mechanism, first.data as Buffer), 'latin1')),
      );
      const final = parseSASLResponse((await messages.next()) as Buffer);
      socket.write(
        Buffer.concat([serializeAuthenticationSASLFinal(Buffer.from(exchange.handleClientFinal(final.data), 'latin1')), readyMessages()]),
      );
    })().catch(() => socket.destroy());
  };
}

test('SCRAM-SHA-256-PLUS still binds on a resumed TLS session, to the certificate kept with it', async (t) => {
  const secret = await createScramSecret('app-secret');
  const fake = await fakeBackend(t, scramBackend(secret));
  const server = new ScramServerExchange({ secret: parseScramSecret(secret), role: 'app', mockKey: randomBytes(16) });
  // The ClientKey as the gateway recovers it from a client's proof.
  const client = new ScramClientExchange({ password: 'app-secret', channelBinding: 'disable' });
  const { mechanism, message } = client.start(server.mechanisms());
  client.handleServerFinal(server.handleClientFinal(await client.handleServerFirst(server.handleClientFirst(mechanism, message))));
  const auth: BackendAuth = { kind: 'scram-key', clientKey: server.clientKey, serverKey: parseScramSecret(secret).serverKey };

  const sessionCache = new TlsSessionCache();
  for (const resumed of [false, true]) {
    const session = await start(fake, { auth }, sessionCache);
    assert.equal(session.authMethod, 'SCRAM-SHA-256-PLUS');
    assert.equal(session.serverVerified, true);
    session.socket.destroy();
    assert.equal(fake.resumed.at(-1), resumed);
  }
  await fake.waitForNoConnections();
});
