// Real clients against the listener: psql (libpq 15), pg and postgres. The next phase of the
// test listener answers FATAL XX000 `tenant=<id> user=<user> options=<options>`, so what each
// client prints is what the gateway understood.
import { after, test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { writeFile } from 'node:fs/promises';
import { connect as connectTcp, createServer, type AddressInfo, type Socket } from 'node:net';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { connect as connectTls, type TLSSocket } from 'node:tls';
import pg from 'pg';
import postgres from 'postgres';
import { createTempDir, createTestPki, removeTempDir, runPsql, type PsqlRun } from '@tenantgate/testing';
import { serializeCancelRequest, serializeSSLRequest } from '@tenantgate/wire';
import {
  connectRaw,
  errorFields,
  readBytes,
  readUntilClose,
  startTestFront,
  startupMessage,
  upgradeToTls,
  type TestFront,
} from '../testing/front-door.ts';
import { localV2, proxyV1, proxyV2, rawV2, tlv } from '../testing/proxy-header.ts';

const pki = await createTestPki({ edgeSuffixes: ['db.example.test'] });
const dir = createTempDir('gateway-listener');
after(() => removeTempDir(dir));
const caFile = join(dir, 'ca.crt');
await writeFile(caFile, pki.ca.certPem);
const ACME = 'acme.db.example.test';

/** psql with `settings` against the listener; never prompts, ignores ~/.postgresql. */
function psql(front: TestFront, settings: Record<string, string>): Promise<PsqlRun> {
  return runPsql({ port: String(front.port), user: 'alice', dbname: 'app', connect_timeout: '5', ...settings }, { home: dir });
}

const viaSni = { host: ACME, hostaddr: '127.0.0.1' };

test('psql sslmode=require: the tenant comes from SNI', async (t) => {
  const front = await startTestFront(t, pki);
  const run = await psql(front, { ...viaSni, sslmode: 'require' });
  assert.equal(run.code, 2);
  assert.match(run.stderr, /FATAL: {2}tenant=acme user=alice options=$/m);
  assert.equal(front.clients[0].serverName, ACME);
});

test('psql sslmode=verify-full against the CA, with gssencmode=prefer (the default path)', async (t) => {
  const front = await startTestFront(t, pki);
  const run = await psql(front, { ...viaSni, sslmode: 'verify-full', sslrootcert: caFile, gssencmode: 'prefer' });
  assert.match(run.stderr, /FATAL: {2}tenant=acme user=alice options=$/m);
});

test('psql to an IP address with options=-c tenant=acme: the tenant comes from options, which are left empty', async (t) => {
  const front = await startTestFront(t, pki);
  const run = await psql(front, { host: '127.0.0.1', sslmode: 'require', options: '-c tenant=acme' });
  assert.match(run.stderr, /FATAL: {2}tenant=acme user=alice options=$/m);
  assert.equal(front.clients[0].serverName, undefined);
  assert.equal(front.clients[0].startup.parameters.has('options'), false);
});

test('psql options keep their other settings, escapes included', async (t) => {
  const front = await startTestFront(t, pki);
  const run = await psql(front, {
    host: '127.0.0.1',
    sslmode: 'require',
    options: '-c search_path=x -ctenant=acme -c application_name=a\\ b',
  });
  assert.match(run.stderr, /FATAL: {2}tenant=acme user=alice options=-c search_path=x -c application_name=a\\ b$/m);
});

test('psql with SNI acme and options tenant=other is refused with 08004', async (t) => {
  const front = await startTestFront(t, pki);
  const run = await psql(front, { ...viaSni, sslmode: 'require', options: '-c tenant=other' });
  assert.match(run.stderr, /FATAL: {2}the host name names tenant "acme" but options name tenant "other"/);
  assert.equal(front.clients.length, 0);
});

test('psql with neither SNI nor option sees how to name the tenant', async (t) => {
  const front = await startTestFront(t, pki);
  const run = await psql(front, { host: '127.0.0.1', sslmode: 'require' });
  assert.match(run.stderr, /FATAL: {2}no tenant in the connection/);
  assert.match(run.stderr, /<tenant>\.db\.example\.test/);
  assert.match(run.stderr, /options=-c%20tenant%3D<tenant>/);
});

test('psql sslmode=disable is told that TLS is required', async (t) => {
  const front = await startTestFront(t, pki);
  const run = await psql(front, { ...viaSni, sslmode: 'disable' });
  assert.match(run.stderr, /FATAL: {2}TLS is required/);
  assert.match(run.stderr, /sslmode=require/);
});

test('pg (node-postgres) with ssl { ca, servername } sees what the gateway understood, and the 08004s', async (t) => {
  const front = await startTestFront(t, pki);
  const connect = async (config: pg.ClientConfig) => {
    const client = new pg.Client({ host: '127.0.0.1', port: front.port, user: 'alice', database: 'app', ...config });
    client.on('error', () => undefined);
    t.after(() => client.end().catch(() => undefined));
    await client.connect();
  };
  await assert.rejects(connect({ ssl: { ca: pki.ca.certPem, servername: ACME } }), {
    code: 'XX000',
    message: 'tenant=acme user=alice options=',
  });
  const noSni = { ca: pki.ca.certPem, checkServerIdentity: () => undefined };
  await assert.rejects(connect({ ssl: noSni, options: '-c tenant=acme -c search_path=x' }), {
    code: 'XX000',
    message: 'tenant=acme user=alice options=-c search_path=x',
  });
  await assert.rejects(connect({ ssl: { ca: pki.ca.certPem, servername: ACME }, options: '-c tenant=other' }), { code: '08004' });
  await assert.rejects(connect({ ssl: noSni }), { code: '08004', message: 'no tenant in the connection' });
});

test('postgres (porsager) with ssl { ca, servername } sees what the gateway understood', async (t) => {
  const front = await startTestFront(t, pki);
  const connect = (options: postgres.Options<Record<string, never>>) => {
    const sql = postgres({
      host: '127.0.0.1',
      port: front.port,
      user: 'alice',
      database: 'app',
      max: 1,
      connect_timeout: 5,
      fetch_types: false,
      ...options,
    });
    t.after(() => sql.end({ timeout: 1 }));
    return sql.unsafe('select 1');
  };
  await assert.rejects(connect({ ssl: { ca: pki.ca.certPem, servername: ACME } }), {
    code: 'XX000',
    message: 'tenant=acme user=alice options=',
  });
  await assert.rejects(connect({ ssl: { ca: pki.ca.certPem, servername: ACME }, connection: { options: 'tenant=other' } }), {
    code: '08004',
  });
});

/** Waits for a condition the test expects soon; fails instead of hanging when it never comes. */
async function until(condition: () => boolean, tries = 2000): Promise<void> {
  for (let i = 0; !condition(); i++) {
    if (i === tries) assert.fail('the condition never became true');
    await sleep(5);
  }
}

test('above maxPendingConnections a client gets 53300 at once, without TLS; below it, service resumes', async (t) => {
  const front = await startTestFront(t, pki, { config: { maxPendingConnections: 1 } });
  const idle = await connectRaw(front.port);
  await until(() => front.listener.pendingHandshakes === 1);

  const extra = await connectRaw(front.port);
  const { bytes } = await readUntilClose(extra);
  const fields = errorFields(bytes);
  assert.equal(fields.code, '53300');
  assert.equal(fields.message, 'too many connections');

  idle.destroy();
  await until(() => front.listener.pendingHandshakes === 0);
  const tls = await upgradeToTls(await connectRaw(front.port), { ca: pki.ca.certPem, servername: ACME });
  const received = readUntilClose(tls);
  tls.write(startupMessage({ user: 'alice' }));
  assert.equal(errorFields((await received).bytes).code, 'XX000');
});

test('one address gets twice GATEWAY_CONNECTS_PER_SECOND_PER_ADDRESS at once, then 53300 naming its address, not the gateway', async (t) => {
  const front = await startTestFront(t, pki, { config: { connectsPerSecondPerAddress: 2 } });
  for (let i = 0; i < 4; i++) {
    const tls = await upgradeToTls(await connectRaw(front.port), { ca: pki.ca.certPem, servername: ACME });
    const received = readUntilClose(tls);
    tls.write(startupMessage({ user: 'alice' }));
    assert.equal(errorFields((await received).bytes).code, 'XX000', 'served');
  }
  const { bytes } = await readUntilClose(await connectRaw(front.port));
  const fields = errorFields(bytes);
  assert.equal(fields.code, '53300');
  assert.equal(fields.detail, 'Your address opened too many connections in the last second.');
});

test('close() stops accepting at once and waits for handshakes under way, which still complete', async (t) => {
  const front = await startTestFront(t, pki);
  const tls = await upgradeToTls(await connectRaw(front.port), { ca: pki.ca.certPem, servername: ACME });
  const closed = front.listener.close();
  const refused = connectTcp({ host: '127.0.0.1', port: front.port });
  const [error] = (await once(refused, 'error')) as [NodeJS.ErrnoException];
  assert.equal(error.code, 'ECONNREFUSED');

  const received = readUntilClose(tls);
  tls.write(startupMessage({ user: 'alice' }));
  assert.equal(errorFields((await received).bytes).message, 'tenant=acme user=alice options=');
  await closed;
  assert.equal(front.listener.pendingHandshakes, 0);
});

// ---------------------------------------------------------------------------------------------
// Behind a load balancer: PROXY protocol headers (GATEWAY_PROXY_PROTOCOL)

const LB_CLIENT = { address: '198.51.100.23', port: 50123 };
const LB_TARGET = { address: '192.0.2.10', port: 5432 };

/**
 * A stand-in for the network load balancer: relays each connection to the gateway, with the
 * PROXY v2 header first, as the NLB does with proxy protocol on. Returns its port.
 */
async function startRelay(t: TestContext, targetPort: number, header: (client: Socket) => Buffer): Promise<number> {
  const sockets = new Set<Socket>();
  const relay = createServer((client) => {
    const upstream = connectTcp({ host: '127.0.0.1', port: targetPort });
    upstream.write(header(client));
    client.pipe(upstream).pipe(client);
    for (const socket of [client, upstream]) {
      sockets.add(socket);
      socket.on('error', () => undefined);
      socket.on('close', () => {
        sockets.delete(socket);
        client.destroy();
        upstream.destroy();
      });
    }
  });
  relay.listen(0, '127.0.0.1');
  await once(relay, 'listening');
  t.after(() => {
    for (const socket of sockets) socket.destroy();
    relay.close();
  });
  return (relay.address() as AddressInfo).port;
}

async function connectionsCounted(front: TestFront, outcome: string): Promise<number> {
  const metric = await front.metrics.registry.getSingleMetric('tenantgate_connections_total')!.get();
  return metric.values.find((v) => v.labels.outcome === outcome)?.value ?? 0;
}

/** The `client` binding of the log lines with this message. */
function loggedClients(front: TestFront, msg: string): unknown[] {
  return front.logs.filter((line) => line.msg === msg).map((line) => line.client);
}

/** The test's next phase answers FATAL XX000 naming the tenant: the sign the client was served. */
async function assertServedAfter(socket: TLSSocket, front: TestFront): Promise<void> {
  const received = readUntilClose(socket);
  socket.write(startupMessage({ user: 'alice' }));
  assert.equal(errorFields((await received).bytes).message, 'tenant=acme user=alice options=');
  await until(() => front.clients.length > 0);
}

test("PROXY required: pg through a load balancer that sends v2 headers is served as the header's client", async (t) => {
  const front = await startTestFront(t, pki, { config: { proxyProtocol: 'required' } });
  const relayPort = await startRelay(t, front.port, (client) =>
    proxyV2({ address: LB_CLIENT.address, port: client.remotePort ?? 0 }, LB_TARGET),
  );
  const client = new pg.Client({
    host: '127.0.0.1',
    port: relayPort,
    user: 'alice',
    database: 'app',
    ssl: { ca: pki.ca.certPem, servername: ACME },
  });
  client.on('error', () => undefined);
  t.after(() => client.end().catch(() => undefined));
  await assert.rejects(client.connect(), { code: 'XX000', message: 'tenant=acme user=alice options=' });
  const [served] = front.clients;
  assert.equal(served.clientAddress, LB_CLIENT.address);
  assert.notEqual(served.clientPort, 0);
  assert.deepEqual(loggedClients(front, 'client handshake complete'), [`${LB_CLIENT.address}:${served.clientPort}`]);
});

test('PROXY required: header and SSLRequest in one segment, then TLS; the IPv6 source is the client', async (t) => {
  const front = await startTestFront(t, pki, { config: { proxyProtocol: 'required' } });
  const raw = await connectRaw(front.port);
  raw.write(
    Buffer.concat([proxyV2({ address: '2001:db8:0:0::7', port: 40000 }, { address: '2001:db8::1', port: 5432 }), serializeSSLRequest()]),
  );
  assert.equal((await readBytes(raw, 1)).toString(), 'S');
  const tls = connectTls({ socket: raw, ca: pki.ca.certPem, servername: ACME });
  await once(tls, 'secureConnect');
  await assertServedAfter(tls, front);
  assert.equal(front.clients[0].clientAddress, '2001:db8::7');
  assert.equal(front.clients[0].clientPort, 40000);
  assert.deepEqual(loggedClients(front, 'client handshake complete'), ['[2001:db8::7]:40000']);
});

test('PROXY required: direct TLS (0x16 first) right after the header is served', async (t) => {
  const front = await startTestFront(t, pki, { config: { proxyProtocol: 'required' } });
  const raw = await connectRaw(front.port);
  raw.write(proxyV2(LB_CLIENT, LB_TARGET));
  const tls = connectTls({ socket: raw, ca: pki.ca.certPem, servername: ACME, ALPNProtocols: ['postgresql'] });
  await once(tls, 'secureConnect');
  await assertServedAfter(tls, front);
  assert.equal(front.clients[0].directTls, true);
  assert.equal(front.clients[0].clientAddress, LB_CLIENT.address);
});

test('PROXY required: a header split across TCP segments, byte by byte, then the client', async (t) => {
  const front = await startTestFront(t, pki, { config: { proxyProtocol: 'required' } });
  const raw = await connectRaw(front.port);
  raw.setNoDelay(true);
  for (const byte of proxyV2(LB_CLIENT, LB_TARGET, [tlv(0xea, Buffer.from('\x01vpce-0123', 'latin1'))])) {
    raw.write(Buffer.from([byte]));
    await sleep(1);
  }
  await assertServedAfter(await upgradeToTls(raw, { ca: pki.ca.certPem, servername: ACME }), front);
  assert.equal(front.clients[0].clientAddress, LB_CLIENT.address);
  assert.equal(front.clients[0].clientPort, LB_CLIENT.port);
});

test('PROXY required: no header, or a malformed one, is closed without a reply, counted and logged once', async (t) => {
  const front = await startTestFront(t, pki, { config: { proxyProtocol: 'required' } });
  const direct = await connectRaw(front.port);
  const directPort = direct.localPort;
  const directClosed = readUntilClose(direct);
  direct.write(serializeSSLRequest());
  assert.equal((await directClosed).bytes.length, 0);

  const broken = await connectRaw(front.port);
  const brokenClosed = readUntilClose(broken);
  broken.write(rawV2(0x21, 0x41, Buffer.alloc(12)));
  assert.equal((await brokenClosed).bytes.length, 0);

  await until(() => loggedClients(front, 'connection closed: invalid PROXY protocol header').length === 2);
  const lines = front.logs.filter((line) => line.msg === 'connection closed: invalid PROXY protocol header');
  assert.equal(lines[0].client, `127.0.0.1:${directPort}`);
  assert.equal(lines[0].reason, 'the connection did not start with a PROXY protocol header');
  assert.match(String(lines[1].reason), /address family 0x4/);
  assert.deepEqual(
    lines.map((line) => line.level),
    ['warn', 'warn'],
  );
  assert.equal(await connectionsCounted(front, 'refused'), 2);
  assert.equal(front.clients.length, 0);
});

test('PROXY optional: a direct client is served with its socket address; a v1 header gives its own', async (t) => {
  const front = await startTestFront(t, pki, { config: { proxyProtocol: 'optional' } });
  const direct = await connectRaw(front.port);
  const directPort = direct.localPort;
  await assertServedAfter(await upgradeToTls(direct, { ca: pki.ca.certPem, servername: ACME }), front);
  assert.equal(front.clients[0].clientAddress, '127.0.0.1');
  assert.equal(front.clients[0].clientPort, directPort);

  const proxied = await connectRaw(front.port);
  proxied.write(proxyV1(LB_CLIENT, LB_TARGET));
  const tls = await upgradeToTls(proxied, { ca: pki.ca.certPem, servername: ACME });
  const received = readUntilClose(tls);
  tls.write(startupMessage({ user: 'bob' }));
  assert.equal(errorFields((await received).bytes).message, 'tenant=acme user=bob options=');
  assert.equal(front.clients[1].clientAddress, LB_CLIENT.address);

  // Direct TLS without any header: the first byte 0x16 is not a PROXY header.
  const directTls = connectTls({
    host: '127.0.0.1',
    port: front.port,
    ca: pki.ca.certPem,
    servername: ACME,
    ALPNProtocols: ['postgresql'],
  });
  await once(directTls, 'secureConnect');
  const third = readUntilClose(directTls);
  directTls.write(startupMessage({ user: 'carol' }));
  assert.equal(errorFields((await third).bytes).message, 'tenant=acme user=carol options=');
  assert.equal(front.clients[2].clientAddress, '127.0.0.1');
});

test("PROXY: LOCAL (a health check) keeps the socket address; a CancelRequest after a header carries the header's", async (t) => {
  const front = await startTestFront(t, pki, { config: { proxyProtocol: 'required' } });
  const local = await connectRaw(front.port);
  local.write(localV2());
  await assertServedAfter(await upgradeToTls(local, { ca: pki.ca.certPem, servername: ACME }), front);
  assert.equal(front.clients[0].clientAddress, '127.0.0.1');

  const cancel = await connectRaw(front.port);
  cancel.write(Buffer.concat([proxyV2(LB_CLIENT, LB_TARGET), serializeCancelRequest(7, Buffer.alloc(4, 9))]));
  const request = await front.nextCancel();
  assert.equal(request.processId, 7);
  assert.equal(request.clientAddress, LB_CLIENT.address);
  assert.equal(request.clientPort, LB_CLIENT.port);
});

test('PROXY: the header must come within the handshake timeout, which also bounds the handshake after it', async (t) => {
  const front = await startTestFront(t, pki, { config: { proxyProtocol: 'required', handshakeTimeoutMs: 300 } });
  const silent = await connectRaw(front.port);
  assert.equal((await readUntilClose(silent)).bytes.length, 0);
  const headerOnly = await connectRaw(front.port);
  headerOnly.write(proxyV2(LB_CLIENT, LB_TARGET));
  assert.equal((await readUntilClose(headerOnly)).bytes.length, 0);
  await until(() => front.listener.pendingHandshakes === 0);
  assert.equal(await connectionsCounted(front, 'timeout'), 2);
  assert.equal(front.logs.filter((line) => line.msg === 'connection closed: no PROXY protocol header in time').length, 1);
});

test('PROXY trusted peers: only their headers are read; another peer is a direct client, closed if it sends one', async (t) => {
  const front = await startTestFront(t, pki, { config: { proxyProtocol: 'required', proxyTrustedCidrs: ['127.0.0.1/32', 'fd00::/8'] } });
  // 127.0.0.2 is not a load balancer: its header is a claim it may not make.
  const liar = await connectRaw(front.port, '127.0.0.2');
  const liarClosed = readUntilClose(liar);
  liar.write(Buffer.concat([proxyV2(LB_CLIENT, LB_TARGET), serializeSSLRequest()]));
  assert.equal((await liarClosed).bytes.length, 0, 'closed without a word');
  await until(() => loggedClients(front, 'connection closed: PROXY protocol header from an untrusted peer').length === 1);
  assert.equal(await connectionsCounted(front, 'refused'), 1);
  assert.equal(front.clients.length, 0);

  // The same peer without a header is a direct client, known by its socket address, though the mode is `required`.
  const direct = await connectRaw(front.port, '127.0.0.2');
  await assertServedAfter(await upgradeToTls(direct, { ca: pki.ca.certPem, servername: ACME }), front);
  assert.equal(front.clients[0].clientAddress, '127.0.0.2');

  // A trusted peer: its header names the client, IPv6 as well; without one it is refused (`required`).
  const balancer = await connectRaw(front.port, '127.0.0.1');
  balancer.write(proxyV2({ address: '2001:db8::7', port: 40000 }, { address: '2001:db8::1', port: 5432 }));
  await assertServedAfter(await upgradeToTls(balancer, { ca: pki.ca.certPem, servername: ACME }), front);
  assert.equal(front.clients[1].clientAddress, '2001:db8::7');
  const headerless = await connectRaw(front.port, '127.0.0.1');
  const headerlessClosed = readUntilClose(headerless);
  headerless.write(serializeSSLRequest());
  assert.equal((await headerlessClosed).bytes.length, 0);
  await until(() => loggedClients(front, 'connection closed: invalid PROXY protocol header').length === 1);
});

test('PROXY off: a header is not read; the handshake sees bytes that are not Postgres and closes', async (t) => {
  const front = await startTestFront(t, pki);
  const raw = await connectRaw(front.port);
  const closed = readUntilClose(raw);
  raw.write(Buffer.concat([proxyV2(LB_CLIENT, LB_TARGET), serializeSSLRequest()]));
  assert.equal((await closed).bytes.length, 0);
  assert.equal(front.clients.length, 0);
});
