// Edge authentication with real clients: psql (libpq 15), pg and postgres log into the listener
// whose next phase is authenticateClient (testing/edge-harness.ts), and raw TLS clients send what
// no well-behaved client sends. acme has the role `app` (password `secret-pw`); globex has no
// role `app`, so the same user name there is an unknown role.
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, describe, test, type TestContext } from 'node:test';
import pg from 'pg';
import postgres from 'postgres';
import {
  FrameWriter,
  FrontendMessageType,
  ScramClientExchange,
  serializePasswordMessage,
  createScramSecret,
  parseBackendMessage,
  serializeSASLInitialResponse,
  serializeSASLResponse,
  serializeTerminate,
  type BackendMessage,
} from '@tenantgate/wire';
import { createTempDir, createTestPki, removeTempDir, runPsql, type PsqlRun } from '@tenantgate/testing';
import { authenticateClient, collectPassword, type EdgeAuthResult } from './edge-auth.ts';
import { ConnectionOutcome } from '../telemetry/index.ts';
import {
  ACME_HOST,
  EDGE_MOCK_KEY,
  EDGE_PARAMETER_STATUS,
  EDGE_PASSWORD,
  EDGE_ROLE,
  EdgeFrames,
  GLOBEX_HOST,
  edgeSocketPair,
  parseDataRow,
  scramAttempt,
  serializeQuery,
  startEdgeHarness,
  startRawClient,
  type EdgeAuthRecord,
  type EdgeHarness,
  type RawClient,
} from '../testing/edge-harness.ts';
import { EdgeAuthError, Refusal } from '../errors.ts';

const pki = await createTestPki();
const dir = createTempDir('gateway-edge-auth');
after(() => removeTempDir(dir));
const caFile = join(dir, 'ca.crt');
await writeFile(caFile, pki.ca.certPem);
const ca = pki.ca.certPem;

function failure(record: EdgeAuthRecord): EdgeAuthError {
  assert.equal(record.outcome, 'failed', 'the authentication failed');
  return record.error;
}

function success(record: EdgeAuthRecord): Extract<EdgeAuthRecord, { outcome: 'ok' }> {
  assert.equal(record.outcome, 'ok', record.outcome === 'failed' ? record.error.message : '');
  return record;
}

/** The FATAL ErrorResponse a raw client got, and that the gateway closed after it. */
async function fatal(client: RawClient): Promise<Extract<BackendMessage, { kind: 'ErrorResponse' }>['fields']> {
  const frames = await client.frames.rest();
  assert.equal(frames.length, 1, 'one message, then the close');
  const message = parseBackendMessage(frames[0]!);
  assert.equal(message.kind, 'ErrorResponse');
  assert.equal(message.fields.severity, 'FATAL');
  return message.fields;
}

function initialResponse(mechanism: string, clientFirst: string): Buffer {
  return serializeSASLInitialResponse(mechanism, Buffer.from(clientFirst, 'latin1'));
}

// ---------------------------------------------------------------------------------------------
// psql

function psql(harness: EdgeHarness, settings: Record<string, string>, password: string): Promise<PsqlRun> {
  return runPsql(
    {
      host: ACME_HOST,
      hostaddr: '127.0.0.1',
      port: String(harness.port),
      user: EDGE_ROLE,
      dbname: 'app',
      sslmode: 'verify-full',
      sslrootcert: caFile,
      connect_timeout: '5',
      ...settings,
    },
    { password },
  );
}

describe('psql (libpq 15)', () => {
  test('channel_binding=require: SCRAM-SHA-256-PLUS, and the session sees the role', async (t) => {
    const harness = await startEdgeHarness(t, pki);
    const run = await psql(harness, { channel_binding: 'require' }, EDGE_PASSWORD);
    assert.deepEqual(run, { code: 0, stdout: 'app\n', stderr: '' });
    const record = success(await harness.nextRecord());
    assert.equal(record.mechanism, 'SCRAM-SHA-256-PLUS');
    assert.equal(record.channelBound, true);
    assert.equal(record.serverKeyLength, 32);
    assert.deepEqual(record.leftover, Buffer.alloc(0));
    // As authenticateClient promises: paused, none of its listeners left.
    assert.equal(record.paused, true);
    assert.equal(record.dataListeners, 0);
  });

  test('channel_binding=disable: SCRAM-SHA-256', async (t) => {
    const harness = await startEdgeHarness(t, pki);
    const run = await psql(harness, { channel_binding: 'disable' }, EDGE_PASSWORD);
    assert.deepEqual(run, { code: 0, stdout: 'app\n', stderr: '' });
    const record = success(await harness.nextRecord());
    assert.equal(record.mechanism, 'SCRAM-SHA-256');
    assert.equal(record.channelBound, false);
  });

  test("a wrong password: exit code 2 and PostgreSQL's message", async (t) => {
    const harness = await startEdgeHarness(t, pki);
    const run = await psql(harness, {}, 'wrong password');
    assert.equal(run.code, 2);
    assert.equal(run.stdout, '');
    assert.match(run.stderr, /FATAL: {2}password authentication failed for user "app"\n$/);
    const error = failure(await harness.nextRecord());
    assert.equal(error.outcome, ConnectionOutcome.Refused);
    assert.equal(error.refusal?.sqlState, '28P01');
    assert.equal(error.message, 'password authentication failed: wrong password');
  });

  test('an unknown role prints exactly what a wrong password prints', async (t) => {
    const harness = await startEdgeHarness(t, pki);
    const wrongPassword = await psql(harness, {}, 'wrong password');
    const unknownHere = await psql(harness, { host: GLOBEX_HOST }, 'wrong password');
    const unknownName = await psql(harness, { user: 'ghost' }, 'wrong password');
    assert.equal(unknownHere.code, 2);
    assert.equal(unknownHere.stderr, wrongPassword.stderr.replace(ACME_HOST, GLOBEX_HOST));
    assert.equal(unknownName.code, 2);
    assert.equal(unknownName.stderr, wrongPassword.stderr.replace('"app"', '"ghost"'));
    const reasons = harness.records.map((record) => failure(record).message);
    // The log may tell them apart; the client cannot.
    assert.deepEqual(reasons, [
      'password authentication failed: wrong password',
      'password authentication failed: no such role',
      'password authentication failed: no such role',
    ]);
  });
});

// ---------------------------------------------------------------------------------------------
// node-postgres

function pgClient(t: TestContext, harness: EdgeHarness, config: pg.ClientConfig): pg.Client {
  const client = new pg.Client({ host: '127.0.0.1', port: harness.port, database: 'app', ssl: { ca, servername: ACME_HOST }, ...config });
  t.after(() => client.end().catch(() => undefined));
  return client;
}

describe('pg (node-postgres)', () => {
  test('enableChannelBinding: SCRAM-SHA-256-PLUS', async (t) => {
    const harness = await startEdgeHarness(t, pki);
    const client = pgClient(t, harness, { user: EDGE_ROLE, password: EDGE_PASSWORD, enableChannelBinding: true });
    await client.connect();
    assert.deepEqual((await client.query('select 1')).rows, [{ user: 'app' }]);
    assert.equal(success(await harness.nextRecord()).mechanism, 'SCRAM-SHA-256-PLUS');
  });

  test('by default: SCRAM-SHA-256 (pg binds only when asked)', async (t) => {
    const harness = await startEdgeHarness(t, pki);
    const client = pgClient(t, harness, { user: EDGE_ROLE, password: EDGE_PASSWORD });
    await client.connect();
    assert.deepEqual((await client.query('select 1')).rows, [{ user: 'app' }]);
    assert.equal(success(await harness.nextRecord()).mechanism, 'SCRAM-SHA-256');
  });

  test('a wrong password or an unknown role: 28P01', async (t) => {
    const harness = await startEdgeHarness(t, pki);
    for (const [user, servername] of [
      [EDGE_ROLE, ACME_HOST],
      [EDGE_ROLE, GLOBEX_HOST],
      ['ghost', ACME_HOST],
    ] as const) {
      const client = pgClient(t, harness, { user, password: 'wrong', enableChannelBinding: true, ssl: { ca, servername } });
      await assert.rejects(client.connect(), {
        code: '28P01',
        severity: 'FATAL',
        message: `password authentication failed for user "${user}"`,
      });
    }
  });
});

// ---------------------------------------------------------------------------------------------
// postgres (porsager): SCRAM-SHA-256 only

describe('postgres (porsager)', () => {
  function connect(t: TestContext, harness: EdgeHarness, password: string) {
    const sql = postgres({
      host: '127.0.0.1',
      port: harness.port,
      database: 'app',
      user: EDGE_ROLE,
      password,
      ssl: { ca, servername: ACME_HOST },
      fetch_types: false,
      max: 1,
      connect_timeout: 5,
    });
    t.after(() => sql.end({ timeout: 1 }));
    return sql;
  }

  test('logs in and runs a simple query', async (t) => {
    const harness = await startEdgeHarness(t, pki);
    const sql = connect(t, harness, EDGE_PASSWORD);
    assert.deepEqual([...(await sql.unsafe('select 1'))], [{ user: 'app' }]);
    assert.equal(success(await harness.nextRecord()).mechanism, 'SCRAM-SHA-256');
  });

  test('a wrong password: 28P01', async (t) => {
    const harness = await startEdgeHarness(t, pki);
    const sql = connect(t, harness, 'wrong');
    await assert.rejects(sql.unsafe('select 1'), { code: '28P01', message: 'password authentication failed for user "app"' });
  });
});

// ---------------------------------------------------------------------------------------------
// The wire

describe('on the wire', () => {
  test('an unknown role gets the very bytes a wrong password gets', async (t) => {
    const harness = await startEdgeHarness(t, pki);
    const wrongPassword = await scramAttempt(t, harness, ca, { password: 'wrong' });
    const unknownRole = await scramAttempt(t, harness, ca, { servername: GLOBEX_HOST, password: 'wrong' });
    assert.equal(wrongPassword.mechanism, 'SCRAM-SHA-256-PLUS');
    assert.equal(unknownRole.mechanism, 'SCRAM-SHA-256-PLUS');
    assert.deepEqual(unknownRole.reply, wrongPassword.reply);
    assert.deepEqual(parseBackendMessage(wrongPassword.reply), {
      kind: 'ErrorResponse',
      fields: { severity: 'FATAL', severityNonLocalized: 'FATAL', code: '28P01', message: 'password authentication failed for user "app"' },
    });
    // Even the password that is right in acme fails in globex, where `app` does not exist.
    const rightElsewhere = await scramAttempt(t, harness, ca, { servername: GLOBEX_HOST, password: EDGE_PASSWORD });
    assert.deepEqual(rightElsewhere.reply, wrongPassword.reply);
    await Promise.all([wrongPassword, unknownRole, rightElsewhere].map((attempt) => attempt.client.frames.closed));
  });

  test("a right password: SASLFinal; AuthenticationOk is the caller's to write", async (t) => {
    const harness = await startEdgeHarness(t, pki);
    const attempt = await scramAttempt(t, harness, ca, { password: EDGE_PASSWORD, channelBinding: 'require' });
    assert.equal(parseBackendMessage(attempt.reply).kind, 'AuthenticationSASLFinal');
    // The harness's session writes these once the promise resolved; authenticateClient never does.
    assert.deepEqual(await attempt.client.frames.message(), { kind: 'AuthenticationOk' });
    success(await harness.nextRecord());
  });

  test('an unknown role shows a stable salt of its own, per tenant, with the iteration count of real roles', async (t) => {
    const harness = await startEdgeHarness(t, pki);
    async function serverFirst(servername: string, user: string): Promise<Map<string, string>> {
      const client = await startRawClient(t, harness, ca, { servername, user });
      client.socket.write(initialResponse('SCRAM-SHA-256', 'n,,n=,r=clientnonce'));
      const reply = await client.frames.message();
      assert.equal(reply.kind, 'AuthenticationSASLContinue');
      client.socket.destroy();
      return new Map(
        reply.data
          .toString('latin1')
          .split(',')
          .map((field) => [field[0]!, field.slice(2)]),
      );
    }
    const ghost = await serverFirst(ACME_HOST, 'ghost');
    const ghostAgain = await serverFirst(ACME_HOST, 'ghost');
    const ghostInGlobex = await serverFirst(GLOBEX_HOST, 'ghost');
    const app = await serverFirst(ACME_HOST, EDGE_ROLE);
    assert.equal(ghost.get('s'), ghostAgain.get('s'));
    assert.notEqual(ghost.get('s'), ghostInGlobex.get('s'));
    assert.equal(Buffer.from(ghost.get('s')!, 'base64').length, Buffer.from(app.get('s')!, 'base64').length);
    assert.equal(ghost.get('i'), app.get('i'));
    assert.match(ghost.get('r')!, /^clientnonce.{24}$/);
  });

  test('a SASLInitialResponse without data: an empty SASLContinue, then the client-first-message in a SASLResponse', async (t) => {
    const harness = await startEdgeHarness(t, pki);
    const client = await startRawClient(t, harness, ca);
    const scram = new ScramClientExchange({
      password: EDGE_PASSWORD,
      peerCertificate: client.socket.getPeerX509Certificate()!,
      channelBinding: 'require',
    });
    const { mechanism, message } = scram.start(client.mechanisms);
    client.socket.write(serializeSASLInitialResponse(mechanism, null));
    assert.deepEqual(await client.frames.message(), { kind: 'AuthenticationSASLContinue', data: Buffer.alloc(0) });
    client.socket.write(serializeSASLResponse(Buffer.from(message, 'latin1')));
    const serverFirst = await client.frames.message();
    assert.equal(serverFirst.kind, 'AuthenticationSASLContinue');
    client.socket.write(serializeSASLResponse(Buffer.from(await scram.handleServerFirst(serverFirst.data), 'latin1')));
    const serverFinal = await client.frames.message();
    assert.equal(serverFinal.kind, 'AuthenticationSASLFinal');
    scram.handleServerFinal(serverFinal.data);
    assert.equal(scram.serverVerified, true);
    assert.equal(success(await harness.nextRecord()).mechanism, 'SCRAM-SHA-256-PLUS');
  });

  test('bytes pipelined after the last SASLResponse are handed over unread', async (t) => {
    const harness = await startEdgeHarness(t, pki);
    const client = await startRawClient(t, harness, ca);
    const scram = new ScramClientExchange({ password: EDGE_PASSWORD, peerCertificate: client.socket.getPeerX509Certificate()! });
    const { mechanism, message } = scram.start(client.mechanisms);
    client.socket.write(initialResponse(mechanism, message));
    const serverFirst = await client.frames.message();
    assert.equal(serverFirst.kind, 'AuthenticationSASLContinue');
    const query = serializeQuery('select 1');
    const clientFinal = serializeSASLResponse(Buffer.from(await scram.handleServerFirst(serverFirst.data), 'latin1'));
    client.socket.write(Buffer.concat([clientFinal, query]));
    const expected = [
      'AuthenticationSASLFinal',
      'AuthenticationOk',
      ...[...EDGE_PARAMETER_STATUS.keys()].map(() => 'ParameterStatus'),
      'BackendKeyData',
      'ReadyForQuery',
    ];
    for (const kind of expected) assert.equal((await client.frames.message()).kind, kind);
    assert.deepEqual(success(await harness.nextRecord()).leftover, query);
    await client.frames.next(); // RowDescription
    assert.deepEqual(parseDataRow((await client.frames.next())!), ['app']);
  });

  test('SCRAM-SHA-256-PLUS without channel binding data: FATAL 08P01, as PostgreSQL', async (t) => {
    const harness = await startEdgeHarness(t, pki);
    const client = await startRawClient(t, harness, ca);
    assert.deepEqual(client.mechanisms, ['SCRAM-SHA-256-PLUS', 'SCRAM-SHA-256']);
    client.socket.write(initialResponse('SCRAM-SHA-256-PLUS', 'n,,n=,r=clientnonce'));
    const fields = await fatal(client);
    assert.equal(fields.code, '08P01');
    assert.equal(fields.message, 'client selected SCRAM-SHA-256-PLUS without channel binding data');
    assert.equal(failure(await harness.nextRecord()).refusal?.sqlState, '08P01');
  });

  test("'y' while PLUS was offered (a downgrade): FATAL 28000 with PostgreSQL's words", async (t) => {
    const harness = await startEdgeHarness(t, pki);
    const client = await startRawClient(t, harness, ca);
    client.socket.write(initialResponse('SCRAM-SHA-256', 'y,,n=,r=clientnonce'));
    const fields = await fatal(client);
    assert.equal(fields.code, '28000');
    assert.equal(fields.message, 'SCRAM channel binding negotiation error');
    assert.equal(
      fields.detail,
      'The client supports SCRAM channel binding but thinks the server does not.  However, this server does support channel binding.',
    );
  });

  test('channel binding data of another certificate: FATAL 28000 "SCRAM channel binding check failed"', async (t) => {
    const harness = await startEdgeHarness(t, pki);
    const client = await startRawClient(t, harness, ca);
    // Bound to the certificate a man in the middle would present, not the gateway's.
    const scram = new ScramClientExchange({
      password: EDGE_PASSWORD,
      peerCertificate: Buffer.from(pki.backend.certPem),
      channelBinding: 'require',
    });
    const { mechanism, message } = scram.start(client.mechanisms);
    client.socket.write(initialResponse(mechanism, message));
    const serverFirst = await client.frames.message();
    assert.equal(serverFirst.kind, 'AuthenticationSASLContinue');
    client.socket.write(serializeSASLResponse(Buffer.from(await scram.handleServerFirst(serverFirst.data), 'latin1')));
    const fields = await fatal(client);
    assert.equal(fields.code, '28000');
    assert.equal(fields.message, 'SCRAM channel binding check failed');
  });

  test('a mechanism that was not offered: FATAL 08P01', async (t) => {
    const harness = await startEdgeHarness(t, pki);
    const client = await startRawClient(t, harness, ca);
    client.socket.write(initialResponse('SCRAM-SHA-1', 'n,,n=,r=clientnonce'));
    const fields = await fatal(client);
    assert.equal(fields.code, '08P01');
    assert.equal(fields.message, 'client selected an invalid SASL authentication mechanism');
  });

  test('a malformed SASLInitialResponse (data length past the end): FATAL 08P01', async (t) => {
    const harness = await startEdgeHarness(t, pki);
    const client = await startRawClient(t, harness, ca);
    const mechanism = 'SCRAM-SHA-256';
    const body = Buffer.byteLength(mechanism) + 1 + 4 + 5;
    client.socket.write(
      FrameWriter.message(FrontendMessageType.PasswordMessage, body).cstring(mechanism).int32(100).bytes(Buffer.from('n,,n=')).finish(),
    );
    const fields = await fatal(client);
    assert.equal(fields.code, '08P01');
    assert.equal(fields.message, 'SASLInitialResponse: message is truncated');
    const error = failure(await harness.nextRecord());
    assert.equal(error.outcome, ConnectionOutcome.Refused);
  });

  test('a malformed client-first-message: FATAL 08P01', async (t) => {
    const harness = await startEdgeHarness(t, pki);
    const client = await startRawClient(t, harness, ca);
    client.socket.write(initialResponse('SCRAM-SHA-256', 'x,,n=,r=clientnonce'));
    assert.equal((await fatal(client)).code, '08P01');
  });

  test('a message longer than PostgreSQL allows before authentication: FATAL 08P01', async (t) => {
    const harness = await startEdgeHarness(t, pki);
    const client = await startRawClient(t, harness, ca);
    const header = Buffer.alloc(5);
    header[0] = FrontendMessageType.PasswordMessage;
    header.writeInt32BE(70_000, 1);
    client.socket.write(header);
    const fields = await fatal(client);
    assert.equal(fields.code, '08P01');
    assert.match(fields.message, /invalid message length 70000/);
  });

  test("another message than a SASL response: FATAL 08P01 with PostgreSQL's words", async (t) => {
    const harness = await startEdgeHarness(t, pki);
    const client = await startRawClient(t, harness, ca);
    client.socket.write(serializeQuery('select 1'));
    const fields = await fatal(client);
    assert.equal(fields.code, '08P01');
    assert.equal(fields.message, 'expected SASL response, got message type 81');
  });

  test('Terminate: closed without a word', async (t) => {
    const harness = await startEdgeHarness(t, pki);
    const client = await startRawClient(t, harness, ca);
    client.socket.write(serializeTerminate());
    assert.deepEqual(await client.frames.rest(), []);
    const error = failure(await harness.nextRecord());
    assert.equal(error.outcome, ConnectionOutcome.ClientClosed);
    assert.equal(error.refusal, undefined);
  });

  test('a Terminate with a body is malformed: FATAL 08P01, as any other unexpected message', async (t) => {
    const harness = await startEdgeHarness(t, pki);
    const client = await startRawClient(t, harness, ca);
    const malformed = Buffer.concat([Buffer.from([FrontendMessageType.Terminate, 0, 0, 0, 8]), Buffer.from('junk')]);
    client.socket.write(malformed);
    const fields = await fatal(client);
    assert.equal(fields.code, '08P01');
    assert.equal(fields.message, 'expected SASL response, got message type 88');
  });

  test('a client that stops mid-exchange: FATAL 57014 after the timeout, then closed', async (t) => {
    const harness = await startEdgeHarness(t, pki, { timeoutMs: 300 });
    const client = await startRawClient(t, harness, ca);
    client.socket.write(initialResponse('SCRAM-SHA-256', 'n,,n=,r=clientnonce'));
    assert.equal((await client.frames.message()).kind, 'AuthenticationSASLContinue');
    // ... and no client-final-message.
    const fields = await fatal(client);
    assert.equal(fields.code, '57014');
    assert.equal(fields.message, 'canceling authentication due to timeout');
    const error = failure(await harness.nextRecord());
    assert.equal(error.outcome, ConnectionOutcome.Timeout);
  });

  test('a client that goes away mid-exchange: outcome client_closed', async (t) => {
    const harness = await startEdgeHarness(t, pki);
    const client = await startRawClient(t, harness, ca);
    client.socket.destroy();
    const error = failure(await harness.nextRecord());
    assert.equal(error.outcome, ConnectionOutcome.ClientClosed);
  });

  test('aborted with a Refusal as the reason: the client gets that refusal', async (t) => {
    const reason = new Refusal('57P01', 'terminating connection due to administrator command');
    const harness = await startEdgeHarness(t, pki, { abort: { afterMs: 100, reason } });
    const client = await startRawClient(t, harness, ca);
    const fields = await fatal(client);
    assert.equal(fields.code, '57P01');
    assert.equal(fields.message, 'terminating connection due to administrator command');
    assert.equal(failure(await harness.nextRecord()).refusal, reason);
  });
});

// ---------------------------------------------------------------------------------------------
// authenticateClient on a plain socket pair: no certificate, so no PLUS

describe('without tls-server-end-point', () => {
  const role = { name: 'app', scramSecret: '' };

  async function withSecret(): Promise<typeof role> {
    return { name: 'app', scramSecret: await createScramSecret(EDGE_PASSWORD, { iterations: 16 }) };
  }

  test('only SCRAM-SHA-256 is offered, and it works; pipelined bytes come back as leftover', async (t) => {
    const { server, client } = await edgeSocketPair(t);
    const events = ['data', 'error', 'end', 'close'] as const;
    const listenersBefore = events.map((event) => server.listenerCount(event));
    const auth = authenticateClient(
      { socket: server },
      { role: await withSecret(), roleName: 'app', tenantId: 'acme', mockKey: EDGE_MOCK_KEY, timeoutMs: 5000 },
    );
    const frames = new EdgeFrames(client);
    const offered = await frames.message();
    assert.deepEqual(offered, { kind: 'AuthenticationSASL', mechanisms: ['SCRAM-SHA-256'] });
    const scram = new ScramClientExchange({ password: EDGE_PASSWORD });
    const { mechanism, message } = scram.start(offered.mechanisms);
    assert.equal(mechanism, 'SCRAM-SHA-256');
    client.write(initialResponse(mechanism, message));
    const serverFirst = await frames.message();
    assert.equal(serverFirst.kind, 'AuthenticationSASLContinue');
    const final = serializeSASLResponse(Buffer.from(await scram.handleServerFirst(serverFirst.data), 'latin1'));
    client.write(Buffer.concat([final, serializeTerminate()]));
    const result: EdgeAuthResult = await auth;
    assert.equal(result.mechanism, 'SCRAM-SHA-256');
    assert.equal(result.channelBound, false);
    assert.equal(result.clientKey.length, 32);
    assert.deepEqual(result.leftover, serializeTerminate());
    assert.equal(server.isPaused(), true);
    assert.deepEqual(
      events.map((event) => server.listenerCount(event)),
      listenersBefore,
      'none of its listeners left',
    );
    const serverFinal = await frames.message();
    assert.equal(serverFinal.kind, 'AuthenticationSASLFinal');
    scram.handleServerFinal(serverFinal.data);
  });

  test('selecting SCRAM-SHA-256-PLUS, which was not offered: FATAL 08P01', async (t) => {
    const { server, client } = await edgeSocketPair(t);
    const auth = authenticateClient(
      { socket: server, serverCertificate: undefined },
      { role: await withSecret(), roleName: 'app', tenantId: 'acme', mockKey: EDGE_MOCK_KEY, timeoutMs: 5000, refusalGraceMs: 100 },
    ).then(
      () => assert.fail('authenticated with a mechanism that was not offered'),
      (e: unknown) => e,
    );
    const frames = new EdgeFrames(client);
    await frames.message();
    client.write(initialResponse('SCRAM-SHA-256-PLUS', 'p=tls-server-end-point,,n=,r=clientnonce'));
    const [error] = await Promise.all([auth, frames.closed]);
    assert.ok(error instanceof EdgeAuthError);
    assert.equal(error.refusal?.sqlState, '08P01');
    assert.equal(error.refusal?.message, 'client selected an invalid SASL authentication mechanism');
  });

  test('a role whose stored secret cannot be read fails like a wrong password, and the log says why', async (t) => {
    const { server, client } = await edgeSocketPair(t);
    const auth = authenticateClient(
      { socket: server },
      {
        role: { ...role, scramSecret: 'md5abc' },
        roleName: 'app',
        tenantId: 'acme',
        mockKey: EDGE_MOCK_KEY,
        timeoutMs: 5000,
        refusalGraceMs: 100,
      },
    ).then(
      () => assert.fail('authenticated with an unreadable secret'),
      (e: unknown) => e,
    );
    const frames = new EdgeFrames(client);
    const scram = new ScramClientExchange({ password: EDGE_PASSWORD });
    const { mechanism, message } = scram.start(((await frames.message()) as { mechanisms: string[] }).mechanisms);
    client.write(initialResponse(mechanism, message));
    const serverFirst = await frames.message();
    assert.equal(serverFirst.kind, 'AuthenticationSASLContinue');
    client.write(serializeSASLResponse(Buffer.from(await scram.handleServerFirst(serverFirst.data), 'latin1')));
    const reply = await frames.message();
    assert.equal(reply.kind, 'ErrorResponse');
    assert.equal(reply.fields.code, '28P01');
    const error = await auth;
    assert.ok(error instanceof EdgeAuthError);
    assert.equal(error.message, "password authentication failed: the role's stored secret is not a valid SCRAM-SHA-256 secret");
    assert.doesNotMatch(String((error.cause as Error).message), /md5abc/);
  });

  test("a mock key shorter than 16 bytes is the caller's error: rejected, connection closed", async (t) => {
    const { server, client } = await edgeSocketPair(t);
    const frames = new EdgeFrames(client);
    const error = await authenticateClient(
      { socket: server },
      { role, roleName: 'app', tenantId: 'acme', mockKey: Buffer.alloc(8), timeoutMs: 5000 },
    ).catch((e: unknown) => e);
    assert.ok(error instanceof EdgeAuthError);
    assert.equal(error.outcome, ConnectionOutcome.Error);
    assert.deepEqual(await frames.rest(), []);
  });
});

// ---------------------------------------------------------------------------------------------
// passthrough: the password in the clear, inside TLS, for the backend to check

describe('collectPassword', () => {
  test('asks for the password and hands over its bytes and what followed them', async (t) => {
    const { server, client } = await edgeSocketPair(t);
    const collected = collectPassword({ socket: server }, { roleName: 'app', timeoutMs: 5000 });
    const frames = new EdgeFrames(client);
    assert.deepEqual(await frames.message(), { kind: 'AuthenticationCleartextPassword' });
    client.write(Buffer.concat([serializePasswordMessage('pässword'), serializeTerminate()]));
    const result = await collected;
    assert.equal(result.password.toString('utf8'), 'pässword');
    assert.deepEqual(result.leftover, serializeTerminate());
    assert.equal(server.isPaused(), true);
  });

  test('an empty password is refused at once with 28P01, as PostgreSQL does', async (t) => {
    const { server, client } = await edgeSocketPair(t);
    const collected = collectPassword({ socket: server }, { roleName: 'app', timeoutMs: 5000, refusalGraceMs: 100 }).then(
      () => assert.fail('an empty password was accepted'),
      (e: unknown) => e,
    );
    const frames = new EdgeFrames(client);
    await frames.message();
    client.write(serializePasswordMessage(''));
    const [error] = await Promise.all([collected, frames.closed]);
    assert.ok(error instanceof EdgeAuthError);
    assert.equal(error.refusal?.sqlState, '28P01');
    assert.equal(error.refusal?.message, 'password authentication failed for user "app"');
  });

  test('a message other than a password response is a protocol violation', async (t) => {
    const { server, client } = await edgeSocketPair(t);
    const collected = collectPassword({ socket: server }, { roleName: 'app', timeoutMs: 5000, refusalGraceMs: 100 }).then(
      () => assert.fail('a query was taken for a password'),
      (e: unknown) => e,
    );
    const frames = new EdgeFrames(client);
    await frames.message();
    client.write(serializeQuery('select 1'));
    const [error] = await Promise.all([collected, frames.closed]);
    assert.ok(error instanceof EdgeAuthError);
    assert.equal(error.refusal?.sqlState, '08P01');
    assert.match(error.refusal?.message ?? '', /expected password response/);
  });
});
