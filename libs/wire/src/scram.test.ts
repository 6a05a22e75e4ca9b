import assert from 'node:assert/strict';
import { type X509Certificate, createHash, createHmac, pbkdf2Sync } from 'node:crypto';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import { tlsServerEndPoint } from './channel-binding.ts';
import { ScramAuthError, ScramError, ScramProtocolError } from './errors.ts';
import {
  SCRAM_DEFAULT_ITERATIONS,
  ScramClientExchange,
  ScramClientState,
  ScramMechanism,
  ScramServerExchange,
  ScramServerState,
  createScramSecret,
  formatScramSecret,
  mockScramSecret,
  parseScramSecret,
  scramMechanisms,
  type ScramClientOptions,
  type ScramSecret,
} from './scram.ts';
import { CERTIFICATES } from './testing/certificates.ts';
import { POSTGRES_SECRETS } from './testing/postgres-secrets.ts';

const PENCIL = parseScramSecret(POSTGRES_SECRETS[0][2]);
const MOCK_KEY = Buffer.alloc(32, 7);
const SERVER_CERT = CERTIFICATES.ecdsaSha384;

function clientKeyOf(password: string, secret: ScramSecret): Buffer {
  const salted = pbkdf2Sync(password, secret.salt, secret.iterations, 32, 'sha256');
  return createHmac('sha256', salted).update('Client Key').digest();
}

function newServer(options: { secret?: ScramSecret; role?: string; bind?: boolean; nonce?: string } = {}) {
  return new ScramServerExchange({
    secret: 'secret' in options ? options.secret : PENCIL,
    role: options.role ?? 'acme/alice',
    mockKey: MOCK_KEY,
    tlsServerEndPoint: options.bind ? tlsServerEndPoint(SERVER_CERT) : undefined,
    nonce: options.nonce,
  });
}

/** Runs a whole exchange and returns what went over the wire. */
async function converse(server: ScramServerExchange, client: ScramClientExchange) {
  const { mechanism, message: clientFirst } = client.start(server.mechanisms());
  const serverFirst = server.handleClientFirst(mechanism, clientFirst);
  const clientFinal = await client.handleServerFirst(serverFirst);
  const serverFinal = server.handleClientFinal(clientFinal);
  client.handleServerFinal(serverFinal);
  return { mechanism, clientFirst, serverFirst, clientFinal, serverFinal };
}

/** The server's state after the client-first-message, and a valid client-final-message to tamper with. */
async function upToClientFinal(serverOptions: Parameters<typeof newServer>[0], clientOptions: ScramClientOptions) {
  const server = newServer(serverOptions);
  const client = new ScramClientExchange(clientOptions);
  const { mechanism, message } = client.start(server.mechanisms());
  const clientFinal = await client.handleServerFirst(server.handleClientFirst(mechanism, message));
  return { server, client, clientFinal };
}

function failure(run: () => unknown): Record<string, unknown> {
  try {
    run();
  } catch (error) {
    assert.ok(error instanceof ScramError, `expected a ScramError, got ${String(error)}`);
    const { name, message, code } = error;
    return { class: error.constructor, name, message, code, sqlState: (error as { sqlState?: string }).sqlState };
  }
  assert.fail('expected the SCRAM step to fail');
}

describe('RFC 7677 test vector', () => {
  const salt = Buffer.from('W22ZaJ0SNY7soEsUEjb6gQ==', 'base64');
  const expected = {
    mechanism: 'SCRAM-SHA-256',
    clientFirst: 'n,,n=user,r=rOprNGfwEbeRWgbNEkqO',
    serverFirst: 'r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096',
    clientFinal: 'c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=',
    serverFinal: 'v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=',
  };

  test('client and server produce the RFC messages byte for byte', async () => {
    const secret = parseScramSecret(await createScramSecret('pencil', { salt, iterations: 4096 }));
    const server = newServer({ secret, nonce: '%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0' });
    const client = new ScramClientExchange({ password: 'pencil', username: 'user', nonce: 'rOprNGfwEbeRWgbNEkqO' });
    assert.deepEqual(await converse(server, client), expected);
    assert.equal(server.state, ScramServerState.Succeeded);
    assert.equal(client.state, ScramClientState.Succeeded);
    assert.equal(client.serverVerified, true);
    assert.deepEqual(server.clientKey, clientKeyOf('pencil', secret));
  });
});

describe('secrets', () => {
  for (const [password, note, secret] of POSTGRES_SECRETS) {
    test(`matches PostgreSQL for ${JSON.stringify(password)} (${note})`, async () => {
      const { salt, iterations } = parseScramSecret(secret);
      assert.equal(await createScramSecret(password, { salt, iterations }), secret);
    });
  }

  test('a password that is not UTF-8 is hashed as raw bytes', async () => {
    const salt = Buffer.from('salty');
    const latin1 = Buffer.from([0x70, 0xe9, 0x6e]); // "pén" in LATIN1
    const salted = pbkdf2Sync(latin1, salt, 16, 32, 'sha256');
    const clientKey = createHmac('sha256', salted).update('Client Key').digest();
    const { storedKey } = parseScramSecret(await createScramSecret(latin1, { salt, iterations: 16 }));
    assert.deepEqual(storedKey, createHash('sha256').update(clientKey).digest());
    const utf8 = await createScramSecret(Buffer.from('\u2178'), { salt, iterations: 16 });
    assert.equal(utf8, await createScramSecret('ix', { salt, iterations: 16 }), "UTF-8 bytes are SASLprep'd");
  });

  test('defaults: 4096 iterations and a fresh 16-byte salt', async () => {
    const a = parseScramSecret(await createScramSecret('pencil'));
    const b = parseScramSecret(await createScramSecret('pencil'));
    assert.equal(a.iterations, SCRAM_DEFAULT_ITERATIONS);
    assert.equal(a.salt.length, 16);
    assert.notDeepEqual(a.salt, b.salt);
  });

  test('parse and format round-trip', () => {
    for (const [, , secret] of POSTGRES_SECRETS) assert.equal(formatScramSecret(parseScramSecret(secret)), secret);
  });

  test('malformed secrets are refused with a ScramError', () => {
    const [head, keys] = POSTGRES_SECRETS[0][2].split('$').slice(1);
    const key = keys.split(':')[0];
    const bad = [
      '',
      'md5c4d3b1b6b5d1e9d9f3c1f0a6b9e9f3e1',
      `SCRAM-SHA-1$${head}$${keys}`,
      `scram-sha-256$${head}$${keys}`,
      `SCRAM-SHA-256$${head}$${keys}\n`,
      `SCRAM-SHA-256$${head}$${keys}$`,
      `SCRAM-SHA-256$${head}$${key}`,
      `SCRAM-SHA-256$${head}`,
      `SCRAM-SHA-256$0:${head.split(':')[1]}$${keys}`,
      `SCRAM-SHA-256$04096:${head.split(':')[1]}$${keys}`,
      `SCRAM-SHA-256$+4096:${head.split(':')[1]}$${keys}`,
      `SCRAM-SHA-256$2147483648:${head.split(':')[1]}$${keys}`,
      `SCRAM-SHA-256$4096:$${keys}`,
      `SCRAM-SHA-256$4096:not*base64$${keys}`,
      `SCRAM-SHA-256$4096:QUJD$${key}:QUJD`,
      `SCRAM-SHA-256$4096:QUJD$${key.slice(4)}:${key}`,
      `SCRAM-SHA-256$4096:QUJD$${key}:${key}:${key}`,
    ];
    for (const text of bad) assert.throws(() => parseScramSecret(text), ScramError, JSON.stringify(text));
  });

  test('createScramSecret refuses an empty password, a bad iteration count, an empty salt', async () => {
    await assert.rejects(createScramSecret(''), ScramError);
    for (const iterations of [0, -1, 1.5, 2 ** 31, NaN]) {
      await assert.rejects(createScramSecret('pencil', { iterations }), ScramError);
    }
    await assert.rejects(createScramSecret('pencil', { salt: Buffer.alloc(0) }), ScramError);
  });
});

describe('server and client round trips', () => {
  test('mechanisms: PLUS first when channel binding is available', () => {
    assert.deepEqual(scramMechanisms(true), ['SCRAM-SHA-256-PLUS', 'SCRAM-SHA-256']);
    assert.deepEqual(scramMechanisms(false), ['SCRAM-SHA-256']);
    assert.deepEqual(newServer({ bind: true }).mechanisms(), scramMechanisms(true));
  });

  test('password, server without PLUS: SCRAM-SHA-256, "y,," from a client able to bind', async () => {
    const server = newServer();
    const client = new ScramClientExchange({ password: 'pencil', peerCertificate: SERVER_CERT });
    assert.equal(server.state, ScramServerState.AwaitingClientFirst);
    const { mechanism, message } = client.start(server.mechanisms());
    assert.equal(mechanism, ScramMechanism.Sha256);
    assert.match(message, /^y,,n=,r=[A-Za-z0-9+/]{24}$/, 'a client that could bind says so: "y"');
    const serverFirst = server.handleClientFirst(mechanism, Buffer.from(message));
    assert.match(serverFirst, /^r=[A-Za-z0-9+/]{48},s=jVxi5vdgB2MIbp833opf4Q==,i=4096$/);
    assert.equal(server.state, ScramServerState.AwaitingClientFinal);
    const pending = client.handleServerFirst(Buffer.from(serverFirst));
    assert.equal(client.state, ScramClientState.Deriving);
    const clientFinal = await pending;
    assert.equal(client.state, ScramClientState.AwaitingServerFinal);
    assert.match(clientFinal, /^c=eSws,r=[^,]+,p=[A-Za-z0-9+/]{43}=$/);
    client.handleServerFinal(server.handleClientFinal(clientFinal));
    assert.equal(client.state, ScramClientState.Succeeded);
    assert.deepEqual(server.clientKey, clientKeyOf('pencil', PENCIL));
  });

  test('password with channel binding: SCRAM-SHA-256-PLUS over tls-server-end-point', async () => {
    const client = new ScramClientExchange({
      password: 'pencil',
      peerCertificate: SERVER_CERT,
      channelBinding: 'require',
    });
    const wire = await converse(newServer({ bind: true }), client);
    assert.equal(wire.mechanism, ScramMechanism.Sha256Plus);
    assert.match(wire.clientFirst, /^p=tls-server-end-point,,n=,r=/);
    const cbind = Buffer.concat([Buffer.from('p=tls-server-end-point,,'), tlsServerEndPoint(SERVER_CERT)]);
    assert.ok(wire.clientFinal.startsWith(`c=${cbind.toString('base64')},`));
    assert.equal(client.serverVerified, true);
  });

  test('the recovered ClientKey logs into the backend, with and without the ServerKey', async () => {
    const front = newServer({ bind: true });
    await converse(front, new ScramClientExchange({ password: 'pencil', peerCertificate: SERVER_CERT }));
    const clientKey = front.clientKey;

    const serverKey = PENCIL.serverKey;
    const verified = new ScramClientExchange({ clientKey, serverKey, peerCertificate: SERVER_CERT });
    const backend = newServer({ bind: true });
    assert.equal((await converse(backend, verified)).mechanism, ScramMechanism.Sha256Plus);
    assert.equal(verified.serverVerified, true);
    assert.deepEqual(backend.clientKey, clientKey);

    const unverified = new ScramClientExchange({ clientKey });
    await converse(newServer(), unverified);
    assert.equal(unverified.state, ScramClientState.Succeeded);
    assert.equal(unverified.serverVerified, false, 'the server could not be checked without its ServerKey');
  });

  test('a ServerKey that does not match the server fails the client', async () => {
    const client = new ScramClientExchange({ clientKey: clientKeyOf('pencil', PENCIL), serverKey: Buffer.alloc(32) });
    const mismatch = { name: 'ScramError', message: /server signature does not match/ };
    await assert.rejects(converse(newServer(), client), mismatch);
    assert.equal(client.state, ScramClientState.Failed);
  });

  test('usernames are escaped as saslname and ignored by the server', async () => {
    const client = new ScramClientExchange({ password: 'pencil', username: 'al,i=ce' });
    assert.match((await converse(newServer(), client)).clientFirst, /^n,,n=al=2Ci=3Dce,r=/);
  });

  test('channel binding modes choose the mechanism as libpq does', () => {
    const plusServer = scramMechanisms(true);
    const plainServer = scramMechanisms(false);
    const start = (options: Partial<ScramClientOptions>, offered: string[]) =>
      new ScramClientExchange({ password: 'x', ...options } as ScramClientOptions).start(offered);
    assert.equal(start({ peerCertificate: SERVER_CERT }, plusServer).mechanism, ScramMechanism.Sha256Plus);
    assert.match(start({ peerCertificate: SERVER_CERT, channelBinding: 'disable' }, plusServer).message, /^n,,/);
    assert.match(start({}, plusServer).message, /^n,,/);
    assert.match(start({ peerCertificate: CERTIFICATES.ed25519 }, plusServer).message, /^n,,/);
    assert.throws(() => start({ channelBinding: 'require' }, plusServer), /no server certificate/);
    const required = (peerCertificate: X509Certificate) => ({ peerCertificate, channelBinding: 'require' as const });
    assert.throws(() => start(required(SERVER_CERT), plainServer), /does not offer/);
    assert.throws(() => start(required(CERTIFICATES.ed25519), plusServer), /not defined for certificates signed with/);
    assert.throws(() => start({ channelBinding: 'disable' }, ['SCRAM-SHA-256-PLUS']), /no usable SASL mechanism/);
    assert.throws(() => start({}, ['OAUTHBEARER']), /no usable SASL mechanism \('OAUTHBEARER'\)/);
  });

  test('a wrong password fails with 28P01 and leaves no ClientKey', async () => {
    const { server, clientFinal } = await upToClientFinal({}, { password: 'pencil!' });
    assert.deepEqual(
      failure(() => server.handleClientFinal(clientFinal)),
      {
        class: ScramAuthError,
        name: 'ScramAuthError',
        message: "SCRAM proof does not match the role's secret",
        code: 'TG_ERR_SCRAM',
        sqlState: '28P01',
      },
    );
    assert.equal(server.state, ScramServerState.Failed);
    assert.throws(() => server.clientKey, ScramError);
    assert.throws(() => server.handleClientFinal(clientFinal), ScramProtocolError, 'a failed exchange stays failed');
  });
});

describe('unknown roles (mock authentication)', () => {
  test('fail exactly like a wrong password, with messages of the same shape', async () => {
    const wrong = await upToClientFinal({ bind: true }, { password: 'wrong', peerCertificate: SERVER_CERT });
    const ghost = await upToClientFinal(
      { bind: true, secret: undefined, role: 'acme/ghost' },
      { password: 'pencil', peerCertificate: SERVER_CERT },
    );
    for (const { server } of [wrong, ghost]) {
      assert.deepEqual(server.mechanisms(), scramMechanisms(true));
      assert.equal(server.state, ScramServerState.AwaitingClientFinal);
    }
    const ghostFailure = failure(() => ghost.server.handleClientFinal(ghost.clientFinal));
    assert.deepEqual(
      ghostFailure,
      failure(() => wrong.server.handleClientFinal(wrong.clientFinal)),
    );
    assert.equal(ghost.server.state, wrong.server.state);
    assert.deepEqual(
      failure(() => ghost.server.clientKey),
      { ...failure(() => wrong.server.clientKey) },
    );
  });

  test('show a salt that is stable per role and key, 16 bytes, and 4096 iterations', () => {
    const serverFirst = (role: string, mockKey = MOCK_KEY) => {
      const server = new ScramServerExchange({ secret: undefined, role, mockKey, nonce: 'S' });
      return server.handleClientFirst('SCRAM-SHA-256', 'n,,n=,r=C');
    };
    const expectedSalt = mockScramSecret(MOCK_KEY, 'acme/ghost').salt.toString('base64');
    assert.equal(serverFirst('acme/ghost'), `r=CS,s=${expectedSalt},i=4096`);
    assert.equal(serverFirst('acme/ghost'), serverFirst('acme/ghost'));
    assert.notEqual(serverFirst('acme/ghost'), serverFirst('acme/phantom'));
    assert.notEqual(serverFirst('acme/ghost'), serverFirst('acme/ghost', Buffer.alloc(32, 8)));
    assert.equal(Buffer.from(expectedSalt, 'base64').length, 16);
  });

  test('use the configured iteration count, and refuse a short mock key', () => {
    const server = new ScramServerExchange({ secret: undefined, role: 'r', mockKey: MOCK_KEY, mockIterations: 1e4 });
    assert.match(server.handleClientFirst('SCRAM-SHA-256', 'n,,n=,r=C'), /,i=10000$/);
    assert.throws(() => new ScramServerExchange({ secret: PENCIL, role: 'r', mockKey: Buffer.alloc(8) }), ScramError);
  });
});

describe('the server refuses', () => {
  const protocolError = (run: () => unknown, label: string) => assert.throws(run, ScramProtocolError, label);

  test('a channel binding downgrade ("y" when PLUS was offered)', () => {
    const server = newServer({ bind: true });
    // PostgreSQL's SQLSTATE for it is 28000, not a protocol violation.
    const downgrade = { name: 'ScramAuthError', message: /negotiation error/, sqlState: '28000' };
    assert.throws(() => server.handleClientFirst('SCRAM-SHA-256', 'y,,n=,r=abc'), downgrade);
    const withoutPlus = newServer();
    assert.doesNotThrow(() => withoutPlus.handleClientFirst('SCRAM-SHA-256', 'y,,n=,r=abc'), 'fine without PLUS');
  });

  test('mechanisms and binding flags that do not agree', () => {
    const cases: Array<[bind: boolean, mechanism: string, message: string]> = [
      [true, 'SCRAM-SHA-256-PLUS', 'n,,n=,r=abc'],
      [true, 'SCRAM-SHA-256', 'p=tls-server-end-point,,n=,r=abc'],
      [false, 'SCRAM-SHA-256-PLUS', 'p=tls-server-end-point,,n=,r=abc'],
      [false, 'SCRAM-SHA-1', 'n,,n=,r=abc'],
      [true, 'SCRAM-SHA-256-PLUS', 'p=tls-unique,,n=,r=abc'],
    ];
    for (const [bind, mechanism, message] of cases) {
      protocolError(() => newServer({ bind }).handleClientFirst(mechanism, message), `${mechanism} ${message}`);
    }
  });

  test('a malformed client-first-message, field by field', () => {
    const bad = [
      '',
      'n',
      'n,',
      'n,,',
      'x,,n=,r=abc',
      'p,,n=,r=abc',
      'N,,n=,r=abc',
      'n,a=bob,n=,r=abc',
      'n,bob,n=,r=abc',
      'n,,m=ext,n=,r=abc',
      'n,,r=abc',
      'n,,n=',
      'n,,n=,r=',
      'n,,n=,r=a b',
      'n,,n=,r=ab\u00e9',
      'n,,n=,r=abc,',
      'n,,n=,r=abc,1=x',
      'n,,n=,x=abc',
      'n,,n,r=abc',
      'n,,n=,r=abc\0',
    ];
    for (const message of bad) {
      protocolError(() => newServer().handleClientFirst('SCRAM-SHA-256', message), JSON.stringify(message));
    }
  });

  test('a malformed client-final-message, field by field', async () => {
    const { clientFinal } = await upToClientFinal({ nonce: 'S' }, { password: 'pencil', nonce: 'C' });
    const proof = clientFinal.slice(clientFinal.indexOf(',p=') + 3);
    const bad = [
      '',
      'c=biws',
      'c=biws,r=CS',
      'c=biws,r=CS,p=',
      'c=biws,r=CS,p=!!!!',
      'c=biws,r=CS,p=AAAA',
      `c=biws,r=CS,p=${proof},x=1`,
      `c=biws,r=CS,p=${proof},p=${proof}`,
      `c=b!ws,r=CS,p=${proof}`,
      `c=,r=CS,p=${proof}`,
      `r=CS,c=biws,p=${proof}`,
      `c=biws,x=CS,p=${proof}`,
      `c=biws,r=CS,1x,p=${proof}`,
      `c=biws,r=CS,p=${proof}=`,
      `c=biws,r=C,p=${proof}`,
      `c=biws,r=CSX,p=${proof}`,
    ];
    for (const message of bad) {
      const { server } = await upToClientFinal({ nonce: 'S' }, { password: 'pencil', nonce: 'C' });
      protocolError(() => server.handleClientFinal(message), message);
    }
  });

  test('a tampered proof (28P01) or channel binding (28000)', async () => {
    const flipped = async (mutate: (message: string) => string) => {
      const client = { password: 'pencil', peerCertificate: SERVER_CERT };
      const { server, clientFinal } = await upToClientFinal({ bind: true }, client);
      return failure(() => server.handleClientFinal(mutate(clientFinal)));
    };
    const flipProof = (message: string) => {
      const at = message.indexOf(',p=') + 3;
      const proof = Buffer.from(message.slice(at), 'base64');
      proof[5] ^= 1;
      return message.slice(0, at) + proof.toString('base64');
    };
    assert.equal((await flipped(flipProof)).sqlState, '28P01');
    assert.equal((await flipped((message) => message.replace(/^c=[^,]+/, 'c=biws'))).sqlState, '28000');

    // A client that binds to another certificate (a man in the middle's) fails the binding check.
    const intercepted = { password: 'pencil', peerCertificate: CERTIFICATES.ecdsaSha512 };
    const { server, clientFinal } = await upToClientFinal({ bind: true }, intercepted);
    assert.deepEqual(
      failure(() => server.handleClientFinal(clientFinal)),
      {
        class: ScramAuthError,
        name: 'ScramAuthError',
        message: 'SCRAM channel binding check failed',
        code: 'TG_ERR_SCRAM',
        sqlState: '28000',
      },
    );
  });

  test('messages out of order', () => {
    protocolError(() => newServer().handleClientFinal('c=biws,r=x,p=AAAA'), 'final first');
    const server = newServer();
    server.handleClientFirst('SCRAM-SHA-256', 'n,,n=,r=abc');
    protocolError(() => server.handleClientFirst('SCRAM-SHA-256', 'n,,n=,r=abc'), 'first twice');
  });
});

describe('the client refuses', () => {
  const atServerFirst = () => {
    const client = new ScramClientExchange({ password: 'pencil', nonce: 'C' });
    client.start(['SCRAM-SHA-256']);
    return client;
  };

  test('a malformed or hostile server-first-message', async () => {
    const bad = [
      '',
      'r=C',
      'r=CS',
      'r=CS,s=',
      'r=CS,s=!!,i=1',
      'r=CS,s=QUJD,i=0',
      'r=CS,s=QUJD,i=-1',
      'r=CS,s=QUJD,i=01',
      'r=CS,s=QUJD,i=1e3',
      'r=CS,s=QUJD,i=4096x',
      'r=CS,s=QUJD,i=99999999999',
      'r=CS,s=QUJD,i=2000000',
      'r=D,s=QUJD,i=1',
      'r=C,s=QUJD,i=1',
      'r=CS S,s=QUJD,i=1',
      'm=x,r=CS,s=QUJD,i=1',
      's=QUJD,r=CS,i=1',
      'r=CS,s=QUJD,i=1,',
      'e=other-error',
    ];
    for (const message of bad) await assert.rejects(atServerFirst().handleServerFirst(message), ScramError, message);
    const capped = new ScramClientExchange({ password: 'pencil', nonce: 'C', maxIterations: 100 });
    capped.start(['SCRAM-SHA-256']);
    await assert.rejects(capped.handleServerFirst('r=CS,s=QUJD,i=101'), /iteration count/);
  });

  test('a malformed server-final-message, a server error, a wrong signature', async () => {
    const { serverFinal } = await converse(newServer(), new ScramClientExchange({ password: 'pencil' }));
    const signature = Buffer.from(serverFinal.slice(2), 'base64');
    signature[0] ^= 1;
    const bad = ['', 'v=', 'v=!!', 'v=AAAA', 'x=AAAA', `${serverFinal},`, `v=${signature.toString('base64')}`];
    for (const message of [...bad, 'e=invalid-proof']) {
      const server = newServer();
      const client = new ScramClientExchange({ password: 'pencil' });
      const { mechanism, message: first } = client.start(server.mechanisms());
      server.handleClientFinal(await client.handleServerFirst(server.handleClientFirst(mechanism, first)));
      assert.throws(() => client.handleServerFinal(message), ScramError, message);
      assert.equal(client.state, ScramClientState.Failed);
    }
    const client = new ScramClientExchange({ password: 'pencil', nonce: 'C' });
    client.start(['SCRAM-SHA-256']);
    await client.handleServerFirst('r=CS,s=QUJD,i=1');
    const rejected = /server rejected the SCRAM exchange: 'invalid-proof'/;
    assert.throws(() => client.handleServerFinal('e=invalid-proof'), rejected);
  });

  test('bad options and steps out of order', async () => {
    const key = Buffer.alloc(32);
    const bad = [
      {},
      { password: 'x', clientKey: key },
      { clientKey: Buffer.alloc(31) },
      { clientKey: key, serverKey: Buffer.alloc(1) },
      { password: 'x', serverKey: key },
      { password: 'x', nonce: 'a,b' },
      { password: 'x', nonce: '' },
      { password: 'x', channelBinding: 'maybe' },
    ];
    for (const options of bad) {
      const label = JSON.stringify(options);
      assert.throws(() => new ScramClientExchange(options as ScramClientOptions), ScramError, label);
    }
    await assert.rejects(new ScramClientExchange({ password: 'x' }).handleServerFirst('r=a,s=QUJD,i=1'), ScramError);
    assert.throws(() => new ScramClientExchange({ password: 'x' }).handleServerFinal('v=AAAA'), ScramError);
  });
});

describe('fuzzing', () => {
  test('random passwords, salts and iteration counts round-trip, and the ClientKey then logs in', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.string({ unit: 'binary', minLength: 1, maxLength: 16 }),
        fc.uint8Array({ minLength: 1, maxLength: 32 }),
        fc.integer({ min: 1, max: 64 }),
        fc.boolean(),
        async (password, salt, iterations, bind) => {
          const secret = parseScramSecret(await createScramSecret(password, { salt: Buffer.from(salt), iterations }));
          const peerCertificate = bind ? SERVER_CERT : undefined;
          const front = newServer({ secret, bind });
          const wire = await converse(front, new ScramClientExchange({ password, peerCertificate }));
          assert.equal(wire.mechanism, bind ? ScramMechanism.Sha256Plus : ScramMechanism.Sha256);
          const { clientKey } = front;
          const backend = new ScramClientExchange({ clientKey, serverKey: secret.serverKey, peerCertificate });
          await converse(newServer({ secret, bind }), backend);
          assert.equal(backend.serverVerified, true);
        },
      ),
      { numRuns: 60 },
    );
  });

  // Messages built from real SCRAM fields reach deeper than random text does.
  const fields = [
    'n',
    'y',
    'p=tls-server-end-point',
    'p=x',
    'a=x',
    'm=x',
    'n=',
    'r=C',
    'r=CS',
    'c=biws',
    'c=eSws',
    'p=AAAA',
    'v=AAAA',
    'e=x',
    's=QUJD',
    'i=1',
    'i=0',
    '',
    '=',
    'x=\u00ff',
  ];
  const message = fc.oneof(
    fc.string({ unit: 'binary', maxLength: 80 }),
    fc.uint8Array({ maxLength: 80 }),
    fc.array(fc.constantFrom(...fields), { maxLength: 8 }).map((parts) => parts.join(',')),
  );
  const onlyScramErrors = (run: () => unknown) => {
    try {
      run();
    } catch (error) {
      assert.ok(error instanceof ScramError, `not a ScramError: ${String(error)}`);
    }
  };

  test('any client-first-message or client-final-message gives a reply or a ScramError', () => {
    const mechanisms = fc.constantFrom('SCRAM-SHA-256', 'SCRAM-SHA-256-PLUS', '');
    fc.assert(
      fc.property(mechanisms, message, message, fc.boolean(), (mechanism, first, final, bind) => {
        const server = newServer({ bind, nonce: 'S' });
        onlyScramErrors(() => server.handleClientFirst(mechanism, first));
        onlyScramErrors(() => server.handleClientFinal(final));
        const primed = newServer({ bind, nonce: 'S' });
        if (bind) primed.handleClientFirst('SCRAM-SHA-256-PLUS', 'p=tls-server-end-point,,n=,r=C');
        else primed.handleClientFirst('SCRAM-SHA-256', 'n,,n=,r=C');
        onlyScramErrors(() => primed.handleClientFinal(final));
      }),
      { numRuns: 2000 },
    );
  });

  test('any server-first-message or server-final-message gives a reply or a ScramError', async () => {
    await fc.assert(
      fc.asyncProperty(message, message, async (first, final) => {
        const keys = { clientKey: Buffer.alloc(32, 1), serverKey: Buffer.alloc(32, 2) };
        const client = new ScramClientExchange({ ...keys, nonce: 'C' });
        client.start(['SCRAM-SHA-256']);
        const reply = client.handleServerFirst(first);
        await reply.catch((error: unknown) => assert.ok(error instanceof ScramError, String(error)));
        onlyScramErrors(() => client.handleServerFinal(final));
      }),
      { numRuns: 1000 },
    );
  });
});
