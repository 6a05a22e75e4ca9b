import { test } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import type { Socket } from 'node:net';
import { connect as connectTls, type ConnectionOptions, type TLSSocket } from 'node:tls';
import fc from 'fast-check';
import { createTestPki } from '@tenantgate/testing';
import { serializeCancelRequest, serializeGSSENCRequest, serializeSSLRequest } from '@tenantgate/wire';
import { NO_USER_MESSAGE } from './handshake.ts';
import {
  backendMessages,
  connectRaw,
  edgeCertificate,
  errorFields,
  readBytes,
  readUntilClose,
  startTestFront,
  startupMessage,
  upgradeToTls,
  type Received,
  type TestFront,
} from '../testing/front-door.ts';

const pki = await createTestPki({ edgeSuffixes: ['db.example.test'] });
const ca = pki.ca.certPem;
const ACME = 'acme.db.example.test';

/** `null`: no SNI (as when connecting to an IP address). */
function clientTls(servername: string | null): ConnectionOptions {
  // Without SNI Node would check the certificate against "localhost"; trust the CA, skip the name.
  return servername === null ? { ca, checkServerIdentity: () => undefined } : { ca, servername };
}

async function tlsClient(front: TestFront, servername: string | null = ACME): Promise<TLSSocket> {
  return upgradeToTls(await connectRaw(front.port), clientTls(servername));
}

async function send(socket: Socket, ...packets: Buffer[]): Promise<Received> {
  const received = readUntilClose(socket);
  socket.write(Buffer.concat(packets));
  return received;
}

/** A normal client after a bad one: the gateway still serves. */
async function assertServes(front: TestFront): Promise<void> {
  const { bytes } = await send(await tlsClient(front), startupMessage({ user: 'next' }));
  assert.equal(errorFields(bytes).message, 'tenant=acme user=next options=');
}

async function metricValue(front: TestFront, name: string, labels: Record<string, string>): Promise<number | undefined> {
  const metric = await front.metrics.registry.getSingleMetric(name)!.get();
  const found = metric.values.find((v) => Object.entries(labels).every(([k, value]) => v.labels[k] === value));
  return found?.value;
}

function packet(...parts: (number | string)[]): Buffer {
  const body = Buffer.concat(parts.map((p) => (typeof p === 'number' ? int32(p) : Buffer.from(p, 'latin1'))));
  return Buffer.concat([int32(body.length + 4), body]);
}

function int32(value: number): Buffer {
  const buf = Buffer.alloc(4);
  buf.writeUInt32BE(value >>> 0);
  return buf;
}

test('SSLRequest, TLS with SNI, StartupMessage: the next phase gets the tenant and the stripped startup', async (t) => {
  const front = await startTestFront(t, pki);
  const raw = await connectRaw(front.port);
  const clientPort = raw.localPort;
  const socket = await upgradeToTls(raw, clientTls(ACME));
  const peer = socket.getPeerX509Certificate();
  const { bytes } = await send(socket, startupMessage({ user: 'alice', database: 'app', options: '-c search_path=x' }));
  assert.equal(errorFields(bytes).code, 'XX000');
  assert.equal(errorFields(bytes).message, 'tenant=acme user=alice options=-c search_path=x');
  const [client] = front.clients;
  assert.equal(client.kind, 'startup');
  assert.equal(client.tls, true);
  assert.equal(client.directTls, false);
  assert.equal(client.serverName, ACME);
  assert.equal(client.tenantIdOrigin, 'server_name');
  assert.equal(client.startup.minorVersion, 0);
  assert.deepEqual([...client.startup.parameters.keys()], ['user', 'database', 'options']);
  assert.equal(client.serverCertificate?.certificate.fingerprint256, peer?.fingerprint256);
  assert.equal(client.clientAddress, '127.0.0.1');
  assert.equal(client.clientPort, clientPort);
  const histogram = await front.metrics.registry.getSingleMetricAsString('tenantgate_phase_duration_seconds');
  assert.match(histogram, /tenantgate_phase_duration_seconds_count\{phase="tls"\} 1$/m);
});

test('direct TLS (sslnegotiation=direct) with ALPN postgresql is served', async (t) => {
  const front = await startTestFront(t, pki);
  const socket = connectTls({ host: '127.0.0.1', port: front.port, servername: ACME, ca, ALPNProtocols: ['postgresql'] });
  await once(socket, 'secureConnect');
  assert.equal(socket.alpnProtocol, 'postgresql');
  const { bytes } = await send(socket, startupMessage({ user: 'alice' }));
  assert.equal(errorFields(bytes).message, 'tenant=acme user=alice options=');
  assert.equal(front.clients[0].directTls, true);
});

test('direct TLS without ALPN is closed after the handshake; another ALPN gets the TLS alert', async (t) => {
  const front = await startTestFront(t, pki);
  const noAlpn = connectTls({ host: '127.0.0.1', port: front.port, servername: ACME, ca });
  const closed = readUntilClose(noAlpn);
  await once(noAlpn, 'secureConnect');
  noAlpn.write(startupMessage({ user: 'alice' }));
  assert.equal((await closed).bytes.length, 0);

  const http = connectTls({ host: '127.0.0.1', port: front.port, servername: ACME, ca, ALPNProtocols: ['http/1.1'] });
  const { error } = await readUntilClose(http);
  assert.equal((error as { code?: string } | undefined)?.code, 'ERR_SSL_TLSV1_ALERT_NO_APPLICATION_PROTOCOL');
  assert.equal(front.clients.length, 0);
  await assertServes(front);
});

test('a plaintext StartupMessage is refused with 28000 and a hint to use sslmode=require', async (t) => {
  const front = await startTestFront(t, pki);
  const { bytes } = await send(await connectRaw(front.port), startupMessage({ user: 'alice', options: '-c tenant=acme' }));
  const fields = errorFields(bytes);
  assert.equal(fields.severity, 'FATAL');
  assert.equal(fields.code, '28000');
  assert.equal(fields.message, 'TLS is required');
  assert.match(fields.hint ?? '', /sslmode=require/);
  assert.equal(front.clients.length, 0);
  assert.equal(await metricValue(front, 'tenantgate_refusals_total', { sqlstate: '28000' }), 1);
  assert.equal(await metricValue(front, 'tenantgate_connections_total', { outcome: 'refused' }), 1);
  const lines = front.logs.filter((line) => line.outcome !== undefined);
  assert.equal(lines.length, 1, 'one log line per refused connection');
  assert.equal(lines[0].sqlstate, '28000');
  assert.match(String(lines[0].client), /^127\.0\.0\.1:\d+$/);
  assert.equal(typeof lines[0].conn, 'number');
});

test('with allowPlaintext a plaintext client proceeds, its tenant from options', async (t) => {
  const front = await startTestFront(t, pki, { config: { allowPlaintext: true } });
  const { bytes } = await send(await connectRaw(front.port), startupMessage({ user: 'alice', options: '-c tenant=acme' }));
  assert.equal(errorFields(bytes).message, 'tenant=acme user=alice options=');
  assert.equal(front.clients[0].tls, false);
  assert.equal(front.clients[0].serverCertificate, undefined);
});

test('without certificates an SSLRequest gets N and the client goes on in plaintext', async (t) => {
  const front = await startTestFront(t, pki, { certificates: null });
  const socket = await connectRaw(front.port);
  socket.write(serializeSSLRequest());
  assert.equal((await readBytes(socket, 1)).toString(), 'N');
  socket.resume();
  const { bytes } = await send(socket, startupMessage({ user: 'alice', options: 'tenant=acme' }));
  assert.equal(errorFields(bytes).message, 'tenant=acme user=alice options=');
});

test('bytes sent after an SSLRequest, before TLS, are refused with 08P01 and no S (CVE-2021-23214)', async (t) => {
  const front = await startTestFront(t, pki);
  const { bytes } = await send(await connectRaw(front.port), serializeSSLRequest(), startupMessage({ user: 'mallory' }));
  assert.equal(bytes[0], 0x45, 'the first byte is an ErrorResponse, not S');
  const fields = errorFields(bytes);
  assert.equal(fields.code, '08P01');
  assert.equal(fields.message, 'received unencrypted data after SSL request');
  assert.equal(front.clients.length, 0);
  await assertServes(front);
});

test('GSSENCRequest gets N, then SSLRequest and TLS proceed (libpq gssencmode=prefer)', async (t) => {
  const front = await startTestFront(t, pki);
  const socket = await connectRaw(front.port);
  socket.write(serializeGSSENCRequest());
  assert.equal((await readBytes(socket, 1)).toString(), 'N');
  const tls = await upgradeToTls(socket, clientTls(ACME));
  const { bytes } = await send(tls, startupMessage({ user: 'alice' }));
  assert.equal(errorFields(bytes).message, 'tenant=acme user=alice options=');

  const greedy = await send(await connectRaw(front.port), serializeGSSENCRequest(), serializeSSLRequest());
  assert.equal(errorFields(greedy.bytes).message, 'received unencrypted data after GSSAPI encryption request');
});

test('a second SSLRequest inside TLS is a protocol violation', async (t) => {
  const front = await startTestFront(t, pki);
  const { bytes } = await send(await tlsClient(front), serializeSSLRequest());
  assert.equal(errorFields(bytes).code, '08P01');
  assert.equal(errorFields(bytes).message, 'unexpected SSLRequest inside TLS');
});

test('bad lengths and garbage are closed silently, bad StartupMessages get their FATAL; the next client is served', async (t) => {
  const front = await startTestFront(t, pki);
  const silent: [string, Buffer][] = [
    ['length 4', int32(4)],
    ['length 10001', Buffer.concat([int32(10001), int32(196608)])],
    ['length 2^31-1', Buffer.concat([int32(0x7fffffff), int32(196608)])],
    ['negative length', int32(0xffffffff)],
    ['HTTP', Buffer.from('GET / HTTP/1.1\r\nHost: acme.db.example.test\r\n\r\n')],
    ['CancelRequest with a 3-byte key', packet(80877102, 7, 'abc')],
    ['SSLRequest with a body', packet(80877103, 'x')],
  ];
  for (const [name, bytes] of silent) {
    const received = await send(await connectRaw(front.port), bytes);
    assert.equal(received.bytes.length, 0, name);
  }
  const fatal: [string, Buffer, string, RegExp][] = [
    ['truncated pair', packet(196608, 'user\0alice\0database'), '08P01', /not NUL-terminated/],
    ['no terminator', packet(196608, 'user\0alice\0'), '08P01', /truncated|terminator/],
    ['value without name', packet(196608, 'user\0'), '08P01', /./],
    ['missing user', packet(196608, 'database\0app\0\0'), '28000', new RegExp(NO_USER_MESSAGE)],
    ['empty user', packet(196608, 'user\0\0\0'), '28000', new RegExp(NO_USER_MESSAGE)],
    ['protocol 2.0', packet(0x20000, 'user\0alice\0\0'), '0A000', /unsupported frontend protocol 2\.0: server supports 3\.0 to 3\.2/],
    ['request code 1234.5681', packet(80877105), '0A000', /unsupported frontend protocol 1234\.5681/],
    ['repeated parameter', packet(196608, 'user\0a\0user\0b\0\0'), '08P01', /appears twice/],
  ];
  for (const [name, bytes, code, message] of fatal) {
    const fields = errorFields((await send(await tlsClient(front), bytes)).bytes);
    assert.equal(fields.code, code, name);
    assert.match(fields.message, message, name);
  }
  const partial = await connectRaw(front.port);
  const closed = readUntilClose(partial);
  partial.end(Buffer.from([0, 0, 0, 40, 0, 3]));
  assert.equal((await closed).bytes.length, 0, 'an incomplete packet then EOF');
  assert.equal(front.clients.length, 0);
  assert.deepEqual(
    front.logs.filter((line) => line.outcome === 'error'),
    [],
    'no fault of the gateway',
  );
  await assertServes(front);
});

test('random bytes never crash the gateway and every such connection ends', async (t) => {
  const front = await startTestFront(t, pki, { config: { handshakeTimeoutMs: 150 } });
  await fc.assert(
    fc.asyncProperty(fc.uint8Array({ minLength: 1, maxLength: 64 }), async (bytes) => {
      await send(await connectRaw(front.port), Buffer.from(bytes));
    }),
    { numRuns: 40 },
  );
  assert.deepEqual(
    front.logs.filter((line) => line.outcome === 'error'),
    [],
    'no fault of the gateway',
  );
  await assertServes(front);
});

test('a client that says nothing is closed at the handshake timeout; one silent inside TLS gets 57014 first', async (t) => {
  const front = await startTestFront(t, pki, { config: { handshakeTimeoutMs: 300 } });
  const idle = await connectRaw(front.port);
  assert.equal((await readUntilClose(idle)).bytes.length, 0);

  const quietTls = await tlsClient(front);
  const fields = errorFields((await readUntilClose(quietTls)).bytes);
  assert.equal(fields.code, '57014');
  assert.equal(await metricValue(front, 'tenantgate_connections_total', { outcome: 'timeout' }), 2);
});

test('protocol 3.2 is accepted as is, with no NegotiateProtocolVersion', async (t) => {
  const front = await startTestFront(t, pki);
  const { bytes } = await send(await tlsClient(front), startupMessage({ user: 'alice' }, 2));
  assert.deepEqual(
    backendMessages(bytes).map((m) => m.kind),
    ['ErrorResponse'],
  );
  assert.equal(front.clients[0].startup.minorVersion, 2);
});

test('protocol 3.9 with _pq_.foo gets NegotiateProtocolVersion(3.2, [_pq_.foo]) and carries on at 3.2', async (t) => {
  const front = await startTestFront(t, pki);
  const { bytes } = await send(await tlsClient(front), startupMessage({ user: 'alice' }, 9, { '_pq_.foo': 'on' }));
  const expected = Buffer.concat([Buffer.from('v'), int32(4 + 4 + 4 + 9), int32(0x00030002), int32(1), Buffer.from('_pq_.foo\0')]);
  assert.deepEqual(bytes.subarray(0, expected.length), expected);
  assert.equal(errorFields(bytes).message, 'tenant=acme user=alice options=');
  assert.equal(front.clients[0].startup.minorVersion, 2);
  assert.equal(front.clients[0].startup.parameters.has('_pq_.foo'), false);

  const old = await send(await tlsClient(front), startupMessage({ user: 'alice' }, 0, { '_pq_.bar': 'x' }));
  assert.deepEqual(backendMessages(old.bytes)[0], {
    kind: 'NegotiateProtocolVersion',
    newestMinorVersion: 0,
    unrecognizedOptions: ['_pq_.bar'],
  });
  assert.equal(front.clients[1].startup.minorVersion, 0);
});

test('a CancelRequest, in plaintext or inside TLS, reaches cancel forwarding and is closed without a word', async (t) => {
  const front = await startTestFront(t, pki);
  const key = Buffer.from([1, 2, 3, 4]);
  const plain = await send(await connectRaw(front.port), serializeCancelRequest(4242, key));
  assert.equal(plain.bytes.length, 0);
  const request = await front.nextCancel();
  assert.deepEqual(
    { ...request, clientPort: 0 },
    { kind: 'cancel', processId: 4242, secretKey: key, tls: false, clientAddress: '127.0.0.1', clientPort: 0 },
  );

  const longKey = Buffer.alloc(32, 7);
  const secure = await send(await tlsClient(front), serializeCancelRequest(99, longKey));
  assert.equal(secure.bytes.length, 0);
  const second = await front.nextCancel();
  assert.equal(second.processId, 99);
  assert.deepEqual(second.secretKey, longKey);
  assert.equal(second.tls, true);
  assert.equal(await metricValue(front, 'tenantgate_connections_total', { outcome: 'cancel' }), 2);
});

test('with two suffixes the SNI picks the certificate; no SNI gets the first', async (t) => {
  const other = await pki.ca.issueServerCertificate({ dnsNames: ['*.db.other.test'] });
  const front = await startTestFront(t, pki, {
    config: { sniSuffixes: ['.db.example.test', '.db.other.test'] },
    certificates: [edgeCertificate(pki), { suffixes: ['.db.other.test'], certPem: other.chainPem, keyPem: other.keyPem }],
  });
  const viaOther = await tlsClient(front, 'acme.db.other.test');
  assert.equal(viaOther.getPeerX509Certificate()?.subjectAltName, 'DNS:*.db.other.test');
  await send(viaOther, startupMessage({ user: 'alice' }));
  assert.equal(front.clients[0].tenantId, 'acme');
  assert.equal(front.clients[0].serverCertificate?.certificate.fingerprint256, other.cert.fingerprint256);

  const viaExample = await tlsClient(front, 'beta.db.example.test');
  assert.equal(viaExample.getPeerX509Certificate()?.subjectAltName, 'DNS:*.db.example.test');
  viaExample.destroy();

  const noSni = await tlsClient(front, null);
  assert.equal(noSni.getPeerX509Certificate()?.fingerprint256, pki.edge.cert.fingerprint256);
  const { bytes } = await send(noSni, startupMessage({ user: 'alice', options: '-c tenant=gamma' }));
  assert.equal(errorFields(bytes).message, 'tenant=gamma user=alice options=');
  assert.equal(front.clients[1].serverCertificate?.certificate.fingerprint256, pki.edge.cert.fingerprint256);
});

test('tenant refusals: SNI and options disagree, neither given', async (t) => {
  const front = await startTestFront(t, pki);
  const conflict = errorFields((await send(await tlsClient(front), startupMessage({ user: 'a', options: '-c tenant=other' }))).bytes);
  assert.equal(conflict.code, '08004');
  assert.match(conflict.message, /"acme".*"other"/);
  const none = errorFields((await send(await tlsClient(front, null), startupMessage({ user: 'a' }))).bytes);
  assert.equal(none.code, '08004');
  assert.match(none.hint ?? '', /<tenant>\.db\.example\.test.*options=-c tenant=<tenant>/);
  assert.equal(await metricValue(front, 'tenantgate_refusals_total', { sqlstate: '08004' }), 2);
});

test('a replication value PostgreSQL knows reaches the session (which asks the tenant); any other is 22023', async (t) => {
  const front = await startTestFront(t, pki);
  for (const value of ['database', 'true', 'on', '1', 'YES', 'false', 'off', '0']) {
    const { bytes } = await send(await tlsClient(front), startupMessage({ user: 'a', replication: value }));
    assert.equal(errorFields(bytes).code, 'XX000', value);
  }
  for (const value of ['maybe', ' on', 'o', 'databases', '']) {
    const fields = errorFields((await send(await tlsClient(front), startupMessage({ user: 'a', replication: value }))).bytes);
    assert.equal(fields.code, '22023', value);
    assert.equal(fields.message, `invalid value for parameter "replication": "${value}"`);
  }
});

test('bytes the client sent after its StartupMessage stay in the socket for the next phase', async (t) => {
  const nextPhase = Promise.withResolvers<Buffer>();
  const front = await startTestFront(t, pki, {
    onClient(client) {
      client.socket.once('data', (chunk: Buffer) => {
        nextPhase.resolve(chunk);
        client.socket.destroy();
      });
      client.socket.resume();
    },
  });
  const socket = await tlsClient(front);
  const early = Buffer.from('p\0\0\0\x09early');
  socket.write(Buffer.concat([startupMessage({ user: 'alice' }), early]));
  assert.deepEqual(await nextPhase.promise, early);
  socket.destroy();
});
