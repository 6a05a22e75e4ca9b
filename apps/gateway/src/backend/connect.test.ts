// The backend leg against real PostgreSQL 15 clusters (pg_hba `cert`, and `scram-sha-256
// clientcert=verify-full`), and against stand-ins for what PostgreSQL cannot be made to do.
import assert from 'node:assert/strict';
import { createHmac, pbkdf2Sync } from 'node:crypto';
import { once } from 'node:events';
import { createServer } from 'node:net';
import { test, type TestContext } from 'node:test';
import { createTestPki, startPostgres, type IssuedCertificate, type PostgresServer } from '@tenantgate/testing';
import { parseScramSecret } from '@tenantgate/wire';
import {
  abandonBackend,
  openBackend,
  startBackendSession,
  type BackendAuth,
  type OpenBackendOptions,
  type OpenedBackend,
} from './connect.ts';
import {
  BackendAbortedError,
  BackendAuthFailedError,
  BackendCertificateExpiredError,
  BackendCertificateHostnameError,
  BackendCertificateUntrustedError,
  BackendClientCertificateRefusedError,
  BackendError,
  BackendNoTlsError,
  BackendProtocolError,
  BackendStartupError,
  BackendTimeoutError,
  BackendUnreachableError,
} from '../errors.ts';
import { BackendTlsContexts, TlsSessionCache, type BackendTlsIdentity } from './tls.ts';
import { simpleQuery, startFakeBackend, startFakeTlsBackend, terminate, waitForNoSessions } from '../testing/backend-servers.ts';

const pki = await createTestPki();

/** What every failure must look like to the client: 08001, a reason, and no address or name. */
function assertBackendError<E extends BackendError>(type: new (...args: never[]) => E, message: RegExp | string) {
  return (error: unknown): boolean => {
    assert.ok(error instanceof type, `expected ${type.name}, got ${String(error)} ${(error as BackendError).logDetail ?? ''}`);
    assert.equal(error.sqlState, '08001');
    assert.match(error.code, /^TG_ERR_BACKEND_/);
    if (typeof message === 'string') assert.equal(error.message, message);
    else assert.match(error.message, message);
    assert.doesNotMatch(error.message, /127\.0\.0\.1|localhost|\d{4,5}/, 'no address, name or port for the client');
    assert.match(error.logDetail, /127\.0\.0\.1:\d+/, 'the log says where');
    return true;
  };
}

function identityFor(client: IssuedCertificate, caPem = pki.ca.certPem): BackendTlsIdentity {
  return { caPem, certPem: client.chainPem, keyPem: client.keyPem };
}

interface Leg {
  readonly contexts: BackendTlsContexts;
  readonly sessionCache: TlsSessionCache;
  open(db: PostgresServer, identity: BackendTlsIdentity, options?: Partial<OpenBackendOptions>): Promise<OpenedBackend>;
}

function leg(): Leg {
  const contexts = new BackendTlsContexts();
  const sessionCache = new TlsSessionCache();
  return {
    contexts,
    sessionCache,
    open: (db, identity, options = {}) =>
      openBackend({
        host: db.host,
        port: db.port,
        serverName: 'localhost',
        secureContext: contexts.get(identity),
        sessionCache,
        connectTimeoutMs: 5000,
        ...options,
      }),
  };
}

function parameters(user: string, database = 'postgres', extra: Record<string, string> = {}): Map<string, string> {
  return new Map([['user', user], ['database', database], ...Object.entries(extra)]);
}

const NO_AUTH: BackendAuth = { kind: 'none' };

async function tlsCluster(
  t: TestContext,
  hba: string[],
  roles: { name: string; password?: string }[],
  serverCert = pki.backend,
): Promise<PostgresServer> {
  const db = await startPostgres({ serverCert: serverCert.chainPem, serverKey: serverCert.keyPem, clientCa: pki.ca.certPem, hba, roles });
  t.after(() => db.stop());
  return db;
}

test('a pg_hba `cert` backend', async (t) => {
  const db = await tlsCluster(t, ['hostssl all all 127.0.0.1/32 cert'], [{ name: 'alice' }, { name: 'bob' }]);
  const alice = identityFor(await pki.client('alice'));

  await t.test('the client certificate logs in, and the handed-over socket runs a query', async () => {
    const { open } = leg();
    const opened = await open(db, alice);
    assert.equal(opened.tlsVersion, 'TLSv1.3');
    assert.equal(opened.peerCertificate.fingerprint256, pki.backend.cert.fingerprint256);
    const session = await startBackendSession(opened, {
      parameters: parameters('alice', 'postgres', { application_name: 'tenantgate-test' }),
      auth: NO_AUTH,
      timeoutMs: 5000,
    });
    assert.equal(session.transactionStatus, 'I');
    assert.equal(session.authMethod, 'none');
    assert.equal(session.protocolMinor, 0);
    assert.equal(session.leftover.length, 0);
    const status = new Map(session.parameterStatus);
    assert.match(status.get('server_version') ?? '', /^15\./);
    assert.equal(status.get('application_name'), 'tenantgate-test');
    assert.equal(session.parameterStatus[0][0], 'application_name', 'in the order PostgreSQL sent them');
    assert.ok(session.backendKey !== undefined && session.backendKey.processId > 0);
    assert.equal(session.backendKey.secretKey.length, 4);

    const result = await simpleQuery(session.socket, 'SELECT 1 AS one, current_user, pg_backend_pid()', session.leftover);
    assert.deepEqual(result.rows, [['1', 'alice', String(session.backendKey.processId)]]);
    assert.equal(result.transactionStatus, 'I');
    await terminate(session.socket);
    await waitForNoSessions(db);
  });

  await t.test('an IP address host without serverName is checked against the IP SAN', async () => {
    const opened = await leg().open(db, alice, { serverName: undefined });
    const session = await startBackendSession(opened, { parameters: parameters('alice'), auth: NO_AUTH, timeoutMs: 5000 });
    assert.equal(session.transactionStatus, 'I');
    await terminate(session.socket);
    await waitForNoSessions(db);
  });

  await t.test('asking for protocol 3.2 gets NegotiateProtocolVersion, and the session runs on 3.0', async () => {
    const opened = await leg().open(db, alice);
    const session = await startBackendSession(opened, { parameters: parameters('alice'), auth: NO_AUTH, timeoutMs: 5000, minorVersion: 2 });
    assert.equal(session.protocolMinor, 0);
    assert.deepEqual(session.unrecognizedProtocolOptions, []);
    assert.equal(session.backendKey?.secretKey.length, 4);
    await terminate(session.socket);
    await waitForNoSessions(db);
  });

  await t.test("a database that does not exist is the backend's own 3D000, forwarded as is", async () => {
    const opened = await leg().open(db, alice);
    const failure = await startBackendSession(opened, { parameters: parameters('alice', 'nope'), auth: NO_AUTH, timeoutMs: 5000 }).then(
      () => assert.fail('the session started'),
      (error: unknown) => error,
    );
    assert.ok(failure instanceof BackendStartupError);
    assert.equal(failure.code, 'TG_ERR_BACKEND_STARTUP');
    assert.equal(failure.sqlState, '3D000');
    assert.equal(failure.message, 'database "nope" does not exist');
    assert.equal(failure.fields.severity, 'FATAL');
    const forwarded = parseError(failure.toErrorResponse());
    assert.equal(forwarded.code, '3D000');
    assert.equal(forwarded.message, 'database "nope" does not exist');
    assert.ok(opened.socket.destroyed);
    await waitForNoSessions(db);
  });

  await t.test("a certificate whose CN is not the user is pg_hba's 28000, forwarded as is", async () => {
    const opened = await leg().open(db, alice);
    await assert.rejects(startBackendSession(opened, { parameters: parameters('bob'), auth: NO_AUTH, timeoutMs: 5000 }), {
      name: 'BackendStartupError',
      sqlState: '28000',
      message: 'certificate authentication failed for user "bob"',
    });
    await waitForNoSessions(db);
  });

  await t.test('the secure context is built once; PostgreSQL 15 issues no TLS session tickets, so nothing resumes', async () => {
    const { open, contexts, sessionCache } = leg();
    for (let i = 0; i < 4; i++) {
      const opened = await open(db, alice);
      assert.equal(opened.sessionReused, false, 'PostgreSQL 15 sets SSL_OP_NO_TICKET and turns its session cache off');
      const session = await startBackendSession(opened, { parameters: parameters('alice'), auth: NO_AUTH, timeoutMs: 5000 });
      await terminate(session.socket);
    }
    assert.equal(contexts.builds, 1);
    assert.equal(sessionCache.size, 0, 'no ticket ever arrived');
    await waitForNoSessions(db);
  });

  await t.test('a backend certificate from a CA the tenant does not trust', async () => {
    await assert.rejects(
      leg().open(db, identityFor(await pki.client('alice'), pki.wrongCa.certPem)),
      assertBackendError(BackendCertificateUntrustedError, /^could not verify the tenant database's certificate: /),
    );
    await waitForNoSessions(db);
  });

  await t.test('a backend certificate without the configured serverName', async () => {
    await assert.rejects(
      leg().open(db, alice, { serverName: 'acme.internal.example.test' }),
      assertBackendError(BackendCertificateHostnameError, /^could not verify the tenant database's certificate: /),
    );
    await assert.rejects(leg().open(db, alice, { serverName: '127.0.0.2' }), (error: unknown) => {
      assert.ok(error instanceof BackendCertificateHostnameError);
      assert.equal(error.code, 'TG_ERR_BACKEND_CERT_HOSTNAME');
      assert.match(error.logDetail, /127\.0\.0\.2/);
      return true;
    });
    await waitForNoSessions(db);
  });

  await t.test('the backend refuses a client certificate from another CA', async () => {
    const stranger = identityFor(await pki.client('alice', { issuer: pki.wrongCa }));
    const refused = assertBackendError(
      BackendClientCertificateRefusedError,
      "the tenant's database refused the gateway's client certificate",
    );
    // TLS 1.3: the server's verdict comes after our handshake; at once, or while the client authenticates.
    await assert.rejects(async () => {
      const opened = await leg().open(db, stranger);
      await startBackendSession(opened, { parameters: parameters('alice'), auth: NO_AUTH, timeoutMs: 5000 });
    }, refused);
    await assert.rejects(async () => {
      const opened = await leg().open(db, stranger);
      await new Promise((resolve) => setTimeout(resolve, 200));
      await startBackendSession(opened, { parameters: parameters('alice'), auth: NO_AUTH, timeoutMs: 5000 });
    }, refused);
    await waitForNoSessions(db);
  });

  await t.test('an opened connection abandoned (the client failed) leaves nothing behind', async () => {
    const opened = await leg().open(db, alice);
    abandonBackend(opened);
    await once(opened.socket, 'close');
    await waitForNoSessions(db);
    assert.doesNotMatch(await db.log(), /could not receive data from client|unexpected EOF/, 'PostgreSQL takes the close silently');
  });
});

/** ClientKey := HMAC(SaltedPassword, "Client Key"), with the backend's own salt and iterations. */
async function scramKeys(db: PostgresServer, role: string, password: string): Promise<{ clientKey: Buffer; serverKey: Buffer }> {
  const [{ rolpassword }] = await db.sql<{ rolpassword: string }>('SELECT rolpassword FROM pg_authid WHERE rolname = $1', [role]);
  const secret = parseScramSecret(rolpassword);
  const salted = pbkdf2Sync(password, secret.salt, secret.iterations, 32, 'sha256');
  return { clientKey: createHmac('sha256', salted).update('Client Key').digest(), serverKey: secret.serverKey };
}

test('a pg_hba `scram-sha-256 clientcert=verify-full` backend', async (t) => {
  const db = await tlsCluster(
    t,
    ['hostssl all plain 127.0.0.1/32 password', 'hostssl all all 127.0.0.1/32 scram-sha-256 clientcert=verify-full'],
    [
      { name: 'app', password: 'app-secret' },
      { name: 'plain', password: 'plain-secret' },
    ],
  );
  const app = identityFor(await pki.client('app'));
  const keys = await scramKeys(db, 'app', 'app-secret');

  await t.test('the recovered ClientKey logs in with channel binding, and the ServerKey verifies the backend', async () => {
    const { open } = leg();
    const session = await startBackendSession(await open(db, app), {
      parameters: parameters('app'),
      auth: { kind: 'scram-key', clientKey: keys.clientKey, serverKey: keys.serverKey },
      timeoutMs: 5000,
    });
    assert.equal(session.authMethod, 'SCRAM-SHA-256-PLUS');
    assert.equal(session.serverVerified, true);
    const result = await simpleQuery(
      session.socket,
      'SELECT current_user, s.ssl, s.client_dn FROM pg_stat_ssl s WHERE s.pid = pg_backend_pid()',
      session.leftover,
    );
    assert.deepEqual(result.rows, [['app', 't', '/CN=app/O=tenantgate tests']]);
    await terminate(session.socket);

    const unverified = await startBackendSession(await open(db, app), {
      parameters: parameters('app'),
      auth: { kind: 'scram-key', clientKey: keys.clientKey },
      timeoutMs: 5000,
    });
    assert.equal(unverified.authMethod, 'SCRAM-SHA-256-PLUS');
    assert.equal(unverified.serverVerified, false, 'without the ServerKey only verify-full TLS authenticates the backend');
    await terminate(unverified.socket);
    await waitForNoSessions(db);
  });

  await t.test("a ClientKey that is not the backend's is its own 28P01, forwarded as is", async () => {
    const wrong = await scramKeys(db, 'app', 'not-the-password');
    await assert.rejects(
      startBackendSession(await leg().open(db, app), {
        parameters: parameters('app'),
        auth: { kind: 'scram-key', clientKey: wrong.clientKey },
        timeoutMs: 5000,
      }),
      (error: unknown) => {
        assert.ok(error instanceof BackendStartupError);
        assert.equal(error.sqlState, '28P01');
        assert.equal(error.message, 'password authentication failed for user "app"');
        assert.equal(parseError(error.toErrorResponse()).code, '28P01');
        return true;
      },
    );
    await waitForNoSessions(db);
  });

  await t.test("a backend that cannot prove the role's secret (another ServerKey) is refused", async () => {
    await assert.rejects(
      startBackendSession(await leg().open(db, app), {
        parameters: parameters('app'),
        auth: { kind: 'scram-key', clientKey: keys.clientKey, serverKey: Buffer.alloc(32, 7) },
        timeoutMs: 5000,
      }),
      assertBackendError(
        BackendAuthFailedError,
        "could not log in to the tenant's database: it could not prove that it knows the role's secret",
      ),
    );
    await waitForNoSessions(db);
  });

  await t.test('a SCRAM request when the session has no key, and a cleartext password request, are refused', async () => {
    await assert.rejects(
      startBackendSession(await leg().open(db, app), { parameters: parameters('app'), auth: NO_AUTH, timeoutMs: 5000 }),
      assertBackendError(BackendAuthFailedError, /^could not log in to the tenant's database: it asks for a password/),
    );
    const plain = identityFor(await pki.client('plain'));
    await assert.rejects(
      startBackendSession(await leg().open(db, plain), {
        parameters: parameters('plain'),
        auth: { kind: 'scram-key', clientKey: keys.clientKey },
        timeoutMs: 5000,
      }),
      (error: unknown) => {
        assert.ok(error instanceof BackendError);
        assert.equal(error.code, 'TG_ERR_BACKEND_AUTH_UNSUPPORTED');
        assert.equal(error.sqlState, '08001');
        assert.match(error.message, /asks for password authentication, which the gateway cannot answer/);
        return true;
      },
    );
    await waitForNoSessions(db);
  });
});

test('a backend presenting an expired certificate', async (t) => {
  const expired = await pki.ca.issueServerCertificate({ dnsNames: ['localhost'], ipAddresses: ['127.0.0.1'], expired: true });
  const db = await tlsCluster(t, ['hostssl all all 127.0.0.1/32 cert'], [{ name: 'alice' }], expired);
  await assert.rejects(
    leg().open(db, identityFor(await pki.client('alice'))),
    assertBackendError(BackendCertificateExpiredError, "could not verify the tenant database's certificate: certificate has expired"),
  );
  await waitForNoSessions(db);
});

test('a port with nothing listening is unreachable', async () => {
  const server = createServer().listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as { port: number };
  server.close();
  await once(server, 'close');
  const contexts = new BackendTlsContexts();
  await assert.rejects(
    openBackend({ host: '127.0.0.1', port, secureContext: contexts.get(identityFor(await pki.client('gateway'))), connectTimeoutMs: 5000 }),
    assertBackendError(BackendUnreachableError, "could not connect to the tenant's database: connection refused"),
  );
});

function parseError(bytes: Buffer): { code: string; message: string } {
  const fields = new Map<string, string>();
  let offset = 5;
  while (bytes[offset] !== 0) {
    const end = bytes.indexOf(0, offset + 1);
    fields.set(String.fromCharCode(bytes[offset]), bytes.toString('utf8', offset + 1, end));
    offset = end + 1;
  }
  assert.equal(String.fromCharCode(bytes[0]), 'E');
  return { code: fields.get('C') ?? '', message: fields.get('M') ?? '' };
}

// ---------------------------------------------------------------------------------------------
// Stand-ins for what PostgreSQL cannot be made to do

async function gatewayContext(): Promise<{ contexts: BackendTlsContexts; identity: BackendTlsIdentity }> {
  return { contexts: new BackendTlsContexts(), identity: identityFor(await pki.client('gateway')) };
}

test('a PostgreSQL with ssl=off answers the SSLRequest with N: it does not accept TLS', async (t) => {
  const { contexts, identity } = await gatewayContext();
  const plain = await startPostgres({ hba: ['host all all 127.0.0.1/32 trust'] });
  t.after(() => plain.stop());
  await assert.rejects(
    openBackend({ host: '127.0.0.1', port: plain.port, secureContext: contexts.get(identity), connectTimeoutMs: 5000 }),
    assertBackendError(BackendNoTlsError, "the tenant's database does not accept TLS"),
  );
});

test('bytes after the S, before the TLS handshake, end the connection', async (t) => {
  const { contexts, identity } = await gatewayContext();
  const fake = await startFakeBackend(t, (socket) => socket.once('data', () => socket.write('Sinjected')));
  await assert.rejects(
    openBackend({ host: '127.0.0.1', port: fake.port, secureContext: contexts.get(identity), connectTimeoutMs: 5000 }),
    (error: unknown) => {
      assert.ok(error instanceof BackendProtocolError);
      assert.equal(error.code, 'TG_ERR_BACKEND_PROTOCOL');
      assert.match(error.logDetail, /8 bytes after 'S'/);
      return true;
    },
  );
  await fake.waitForNoConnections();
});

test('a server that accepts and says nothing times out, in the phase it stalled', async (t) => {
  const { contexts, identity } = await gatewayContext();
  const silent = await startFakeBackend(t, (socket) => socket.resume());
  await assert.rejects(
    openBackend({ host: '127.0.0.1', port: silent.port, secureContext: contexts.get(identity), connectTimeoutMs: 5000, tlsTimeoutMs: 100 }),
    (error: unknown) => {
      assertBackendError(BackendTimeoutError, "timed out waiting for the TLS answer of the tenant's database")(error);
      assert.equal((error as BackendTimeoutError).phase, 'ssl-request');
      assert.equal((error as BackendTimeoutError).code, 'TG_ERR_BACKEND_TIMEOUT');
      return true;
    },
  );
  await silent.waitForNoConnections();

  const noHandshake = await startFakeBackend(t, (socket) => socket.once('data', () => socket.write('S')));
  await assert.rejects(
    openBackend({
      host: '127.0.0.1',
      port: noHandshake.port,
      secureContext: contexts.get(identity),
      connectTimeoutMs: 5000,
      tlsTimeoutMs: 100,
    }),
    (error: unknown) => error instanceof BackendTimeoutError && error.phase === 'tls',
  );
  await noHandshake.waitForNoConnections();
});

test('the caller can abandon an open in progress', async (t) => {
  const { contexts, identity } = await gatewayContext();
  const silent = await startFakeBackend(t, (socket) => socket.resume());
  const controller = new AbortController();
  const opening = openBackend({
    host: '127.0.0.1',
    port: silent.port,
    secureContext: contexts.get(identity),
    connectTimeoutMs: 5000,
    signal: controller.signal,
  });
  setTimeout(() => controller.abort(new Error('client went away')), 50);
  await assert.rejects(opening, (error: unknown) => {
    assert.ok(error instanceof BackendAbortedError);
    assert.equal(error.code, 'TG_ERR_BACKEND_ABORTED');
    assert.equal((error.cause as Error).message, 'client went away');
    return true;
  });
  await silent.waitForNoConnections();
  await assert.rejects(
    openBackend({
      host: '127.0.0.1',
      port: silent.port,
      secureContext: contexts.get(identity),
      connectTimeoutMs: 5000,
      signal: AbortSignal.abort(),
    }),
    BackendAbortedError,
  );
  await silent.waitForNoConnections();
});

test('a backend that issues session tickets: the second connection resumes, per identity', async (t) => {
  const fake = await startFakeTlsBackend(t, {
    cert: pki.backend.chainPem,
    key: pki.backend.keyPem,
    ca: pki.ca.certPem,
    requestCert: true,
    rejectUnauthorized: true,
  });
  const { contexts, identity } = await gatewayContext();
  const sessionCache = new TlsSessionCache();
  const connect = async (id: BackendTlsIdentity) => {
    const opened = await openBackend({
      host: '127.0.0.1',
      port: fake.port,
      serverName: 'localhost',
      secureContext: contexts.get(id),
      sessionCache,
      connectTimeoutMs: 5000,
    });
    const session = await startBackendSession(opened, { parameters: parameters('app'), auth: NO_AUTH, timeoutMs: 5000 });
    session.socket.destroy();
    return opened;
  };
  const first = await connect(identity);
  assert.equal(first.sessionReused, false);
  assert.equal(sessionCache.size, 1, 'the ticket was kept');
  const second = await connect(identity);
  assert.equal(second.sessionReused, true);
  assert.equal(
    second.peerCertificate.fingerprint256,
    pki.backend.cert.fingerprint256,
    'a resumed session still has the certificate to bind SCRAM to',
  );
  const other = await connect(identityFor(await pki.client('other')));
  assert.equal(other.sessionReused, false, 'another client certificate never resumes a session made with this one');
  assert.deepEqual(fake.resumed, [false, true, false]);
  assert.equal(contexts.builds, 2);
  await fake.waitForNoConnections();
});
