// The PROXY header parser at every split point, against each clause of the spec that a receiver
// must enforce, fuzzed; and the socket reader over an in-memory duplex.
// @see https://www.haproxy.org/download/2.9/doc/proxy-protocol.txt
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { SocketAddress, type Socket } from 'node:net';
import { PassThrough } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import fc from 'fast-check';
import { serializeSSLRequest } from '@tenantgate/wire';
import {
  clientAddressOf,
  MAX_V1_HEADER_LENGTH,
  MAX_V2_HEADER_LENGTH,
  PROXY_V2_SIGNATURE,
  parseProxyHeader,
  readProxyHeader,
  type ProxyParseResult,
} from './proxy-protocol.ts';
import { localV2, proxyV1, proxyV2, rawV2, tlv } from '../testing/proxy-header.ts';
import { ProxyHeaderError, ProxyHeaderFailure } from '../errors.ts';

const CLIENT = { address: '203.0.113.7', port: 40123 };
const GATEWAY = { address: '10.0.3.17', port: 5432 };
const SSL_REQUEST = serializeSSLRequest();
/** The TLV an AWS NLB adds: type 0xEA, subtype 0x01, the VPC endpoint id. */
const NLB_TLV = tlv(0xea, Buffer.concat([Buffer.from([0x01]), Buffer.from('vpce-08d2bf15fac5001c9', 'latin1')]));

function malformed(message: RegExp) {
  return (error: unknown) =>
    error instanceof ProxyHeaderError && error.failure === ProxyHeaderFailure.Malformed && message.test(error.message);
}

// ---------------------------------------------------------------------------------------------
// Version 2

test('v2 TCP over IPv4: the client and gateway endpoints, and the header length', () => {
  const header = proxyV2(CLIENT, GATEWAY);
  assert.deepEqual(parseProxyHeader(Buffer.concat([header, SSL_REQUEST])), {
    kind: 'proxy',
    version: 2,
    family: 'ipv4',
    transport: 'stream',
    source: CLIENT,
    destination: GATEWAY,
    length: 28,
  });
});

test('v2 TCP over IPv6: canonical text, and an IPv4-mapped address as plain IPv4', () => {
  const source = { address: '2001:db8:0:0:0:0:0:1', port: 1 };
  const mapped = { address: '::ffff:c633:6407', port: 65535 };
  const result = parseProxyHeader(proxyV2(source, mapped));
  assert.equal(result.kind, 'proxy');
  assert.deepEqual(result.source, { address: '2001:db8::1', port: 1 });
  assert.deepEqual(result.destination, { address: '198.51.100.7', port: 65535 });
  assert.equal(result.family, 'ipv6');
  assert.equal(result.length, 16 + 36);
});

test('v2 UDP over IPv4 reports transport dgram', () => {
  const udp = rawV2(0x21, 0x12, proxyV2(CLIENT, GATEWAY).subarray(16));
  const result = parseProxyHeader(udp);
  assert.equal(result.kind, 'proxy');
  assert.equal(result.transport, 'dgram');
  assert.deepEqual(result.source, CLIENT);
});

test('v2 UNIX stream: two NUL-terminated 108-byte paths, port 0', () => {
  const paths = Buffer.alloc(216);
  paths.write('/run/client.sock', 0, 'utf8');
  paths.write('/run/pg/.s.PGSQL.5432', 108, 'utf8');
  const result = parseProxyHeader(rawV2(0x21, 0x31, paths));
  assert.deepEqual(result, {
    kind: 'proxy',
    version: 2,
    family: 'unix',
    transport: 'stream',
    source: { address: '/run/client.sock', port: 0 },
    destination: { address: '/run/pg/.s.PGSQL.5432', port: 0 },
    length: 232,
  });
});

test('v2 LOCAL: no addresses to take; a family and address block, if sent, are skipped unread', () => {
  assert.deepEqual(parseProxyHeader(localV2()), { kind: 'local', version: 2, length: 16 });
  // "Receivers MUST always consider this field to skip the appropriate number of bytes."
  const withBlock = rawV2(0x20, 0x11, proxyV2(CLIENT, GATEWAY).subarray(16));
  assert.deepEqual(parseProxyHeader(Buffer.concat([withBlock, SSL_REQUEST])), { kind: 'local', version: 2, length: 28 });
  // The family of a LOCAL header is ignored, even one the spec does not define.
  assert.deepEqual(parseProxyHeader(rawV2(0x20, 0xff)), { kind: 'local', version: 2, length: 16 });
});

test('v2 PROXY with UNSPEC family or transport: no usable address (the socket stands)', () => {
  assert.deepEqual(parseProxyHeader(rawV2(0x21, 0x00)), { kind: 'unknown', version: 2, length: 16 });
  assert.deepEqual(parseProxyHeader(rawV2(0x21, 0x10, Buffer.alloc(12))), { kind: 'unknown', version: 2, length: 28 });
});

test('v2 TLVs are skipped, but each must end inside the header', () => {
  const noop = tlv(0x04, Buffer.alloc(5));
  const header = proxyV2(CLIENT, GATEWAY, [NLB_TLV, noop, tlv(0x05, Buffer.alloc(0))]);
  const result = parseProxyHeader(Buffer.concat([header, SSL_REQUEST]));
  assert.equal(result.kind, 'proxy');
  assert.equal(result.length, header.length);
  assert.deepEqual(result.source, CLIENT);

  const block = proxyV2(CLIENT, GATEWAY).subarray(16);
  const overrun = Buffer.concat([block, tlv(0x04, Buffer.alloc(4)).subarray(0, 5)]);
  // The TLV says 4 bytes; the header's length leaves it 2.
  const overrunHeader = rawV2(0x21, 0x11, overrun);
  assert.throws(() => parseProxyHeader(Buffer.concat([overrunHeader, SSL_REQUEST])), malformed(/TLV 0x4 runs 2 bytes past/));
  for (const stray of [Buffer.from([0x04]), Buffer.from([0x04, 0x00])]) {
    assert.throws(() => parseProxyHeader(rawV2(0x21, 0x11, Buffer.concat([block, stray]))), malformed(/TLV cut short/));
  }
});

test('v2 version other than 2, and commands other than LOCAL and PROXY, are refused at byte 13', () => {
  for (const byte of [0x11, 0x31, 0x01, 0xf1]) {
    assert.throws(
      () => parseProxyHeader(Buffer.concat([PROXY_V2_SIGNATURE, Buffer.from([byte])])),
      malformed(/with version/),
      byte.toString(16),
    );
  }
  for (const byte of [0x22, 0x2f]) {
    assert.throws(() => parseProxyHeader(Buffer.concat([PROXY_V2_SIGNATURE, Buffer.from([byte])])), malformed(/is not LOCAL or PROXY/));
  }
});

test('v2 PROXY with an undefined family or transport is refused at byte 14', () => {
  for (const byte of [0x41, 0xf1]) {
    assert.throws(() => parseProxyHeader(Buffer.concat([PROXY_V2_SIGNATURE, Buffer.from([0x21, byte])])), malformed(/address family/));
  }
  for (const byte of [0x13, 0x1f]) {
    assert.throws(() => parseProxyHeader(Buffer.concat([PROXY_V2_SIGNATURE, Buffer.from([0x21, byte])])), malformed(/transport/));
  }
});

test(`v2 declared length: refused above ${MAX_V2_HEADER_LENGTH} bytes as soon as it is read; at the cap, accepted`, () => {
  const fixed = (length: number) => {
    const bytes = rawV2(0x21, 0x11);
    bytes.writeUInt16BE(length, 14);
    return bytes;
  };
  assert.throws(() => parseProxyHeader(fixed(MAX_V2_HEADER_LENGTH - 16 + 1)), malformed(/537 bytes, above the limit of 536/));
  assert.throws(() => parseProxyHeader(fixed(0xffff)), malformed(/above the limit/));
  assert.deepEqual(parseProxyHeader(fixed(MAX_V2_HEADER_LENGTH - 16)), { kind: 'incomplete' });
  const padding = tlv(0x04, Buffer.alloc(MAX_V2_HEADER_LENGTH - 28 - 3));
  const atCap = proxyV2(CLIENT, GATEWAY, [padding]);
  assert.equal(atCap.length, MAX_V2_HEADER_LENGTH);
  assert.equal(parseProxyHeader(atCap).kind, 'proxy');
});

test('v2 address blocks shorter than their family needs are refused', () => {
  const cases: [number, number, RegExp][] = [
    [0x11, 8, /ipv4 addresses need 12 bytes, the header declares 8/],
    [0x21, 12, /ipv6 addresses need 36 bytes, the header declares 12/],
    [0x22, 35, /ipv6 addresses need 36 bytes/],
    [0x31, 215, /unix addresses need 216 bytes/],
  ];
  for (const [family, length, message] of cases) {
    assert.throws(() => parseProxyHeader(rawV2(0x21, family, Buffer.alloc(length))), malformed(message));
  }
});

test('bytes that do not start like a header are absent: Postgres packets, TLS, HTTP, a broken signature', () => {
  const absent = [
    SSL_REQUEST,
    Buffer.from([0x16, 0x03, 0x01, 0x02, 0x00]),
    Buffer.from('GET /healthz HTTP/1.1\r\n'),
    Buffer.from('\r\n\r\nX'),
    Buffer.concat([PROXY_V2_SIGNATURE.subarray(0, 11), Buffer.from([0x0b, 0x21, 0x11])]),
    Buffer.from('PROXY\r\n'),
    Buffer.from('PROX TCP4'),
  ];
  for (const bytes of absent) assert.deepEqual(parseProxyHeader(bytes), { kind: 'absent' }, bytes.toString('hex'));
  assert.deepEqual(parseProxyHeader(Buffer.alloc(0)), { kind: 'incomplete' });
});

// ---------------------------------------------------------------------------------------------
// Version 1

test('v1 TCP4 and TCP6 lines; IPv6 text made canonical', () => {
  const line = proxyV1(CLIENT, GATEWAY);
  assert.deepEqual(parseProxyHeader(Buffer.concat([line, SSL_REQUEST])), {
    kind: 'proxy',
    version: 1,
    family: 'ipv4',
    transport: 'stream',
    source: CLIENT,
    destination: GATEWAY,
    length: line.length,
  });
  const v6 = parseProxyHeader(Buffer.from('PROXY TCP6 2001:DB8:0000::0001 ::FFFF:198.51.100.7 0 65535\r\n'));
  assert.equal(v6.kind, 'proxy');
  assert.deepEqual(v6.source, { address: '2001:db8::1', port: 0 });
  assert.deepEqual(v6.destination, { address: '198.51.100.7', port: 65535 });
});

test('v1 UNKNOWN, short or with anything up to the CRLF, has no usable address', () => {
  assert.deepEqual(parseProxyHeader(Buffer.from('PROXY UNKNOWN\r\nrest')), { kind: 'unknown', version: 1, length: 15 });
  const long = `PROXY UNKNOWN ${'f'.repeat(39)} ${'f'.repeat(39)} 65535 65535\r\n`;
  assert.equal(long.length, MAX_V1_HEADER_LENGTH);
  assert.deepEqual(parseProxyHeader(Buffer.from(long)), { kind: 'unknown', version: 1, length: MAX_V1_HEADER_LENGTH });
});

test('v1 lines that break the spec are refused', () => {
  const cases: [string, RegExp][] = [
    ['PROXY TCP4 01.2.3.4 10.0.0.1 1 2\r\n', /address "01.2.3.4"/],
    ['PROXY TCP4 256.2.3.4 10.0.0.1 1 2\r\n', /address "256.2.3.4"/],
    ['PROXY TCP4 ::1 10.0.0.1 1 2\r\n', /TCP4 address "::1"/],
    ['PROXY TCP6 1.2.3.4 ::1 1 2\r\n', /TCP6 address "1.2.3.4"/],
    ['PROXY TCP6 fe80::1%eth0 ::1 1 2\r\n', /address "fe80::1%eth0"/],
    ['PROXY TCP6 [::1] ::1 1 2\r\n', /address "\[::1\]"/],
    ['PROXY TCP4 1.2.3.4 10.0.0.1 01 2\r\n', /port "01"/],
    ['PROXY TCP4 1.2.3.4 10.0.0.1 1 65536\r\n', /port "65536"/],
    ['PROXY TCP4 1.2.3.4 10.0.0.1 -1 2\r\n', /port "-1"/],
    ['PROXY TCP4 1.2.3.4 10.0.0.1 1\r\n', /5 fields instead of 6/],
    ['PROXY TCP4  1.2.3.4 10.0.0.1 1 2\r\n', /7 fields instead of 6/],
    ['PROXY TCP4 1.2.3.4 10.0.0.1 1 2 \r\n', /7 fields/],
    ['PROXY UDP4 1.2.3.4 10.0.0.1 1 2\r\n', /"UDP4" is not TCP4, TCP6 or UNKNOWN/],
    ['PROXY TCP4 1.2.3.4 10.0.0.1 1 2\n', /byte 0xa/],
    ['PROXY TCP4 1.2.3.4 10.0.0.1 1 2\rX', /CR without LF/],
    ['PROXY TCP4 1.2.3.4\t10.0.0.1 1 2\r\n', /byte 0x9/],
    ['PROXY TCP4 1.2.3.4 10.0.0.1 1 2\u00e9\r\n', /byte 0xe9/],
    [`PROXY UNKNOWN ${'f'.repeat(100)}`, /without CRLF in its first 107 bytes/],
    // The CRLF one byte too far: the LF would be byte 108.
    [`PROXY UNKNOWN ${'f'.repeat(92)}\r\n`, /without CRLF in its first 107 bytes/],
  ];
  for (const [line, message] of cases)
    assert.throws(() => parseProxyHeader(Buffer.from(line, 'latin1')), malformed(message), JSON.stringify(line));
});

// ---------------------------------------------------------------------------------------------
// Split points

const HEADERS: Record<string, Buffer> = {
  'v2 TCP4 with TLVs': proxyV2(CLIENT, GATEWAY, [NLB_TLV, tlv(0x04, Buffer.alloc(2))]),
  'v2 TCP6': proxyV2({ address: '2001:db8::7', port: 1 }, { address: '2001:db8::1', port: 5432 }),
  'v2 LOCAL': localV2(),
  'v2 UNSPEC': rawV2(0x21, 0x00, Buffer.alloc(4)),
  'v1 TCP4': proxyV1(CLIENT, GATEWAY),
  'v1 TCP6': proxyV1({ address: '2001:db8::7', port: 1 }, { address: '2001:db8::1', port: 5432 }),
  'v1 UNKNOWN': Buffer.from('PROXY UNKNOWN\r\n'),
};

test('every split point: a prefix of a header is incomplete; the header and what follows, the same result', () => {
  for (const [name, header] of Object.entries(HEADERS)) {
    const whole = Buffer.concat([header, SSL_REQUEST, Buffer.from([0x16, 0x03, 0x01])]);
    const expected = parseProxyHeader(header);
    assert.notEqual(expected.kind, 'incomplete', name);
    for (let split = 0; split <= whole.length; split++) {
      const result = parseProxyHeader(whole.subarray(0, split));
      if (split < header.length) assert.deepEqual(result, { kind: 'incomplete' }, `${name} at ${split}`);
      else assert.deepEqual(result, expected, `${name} at ${split}`);
    }
  }
});

/** A duplex that stands in for an accepted socket: the test writes what the peer sends. */
function fakeSocket(): PassThrough & Socket {
  return new PassThrough() as unknown as PassThrough & Socket;
}

/** Everything the socket still holds and will receive until `end()`, after resuming it. */
function drain(socket: PassThrough): Promise<Buffer> {
  const chunks: Buffer[] = [];
  socket.on('data', (chunk: Buffer) => chunks.push(chunk));
  socket.resume();
  return new Promise((resolve) => socket.once('end', () => resolve(Buffer.concat(chunks))));
}

test('the socket reader, with the header and the client bytes split at every point into two and three chunks', async () => {
  for (const [name, header] of Object.entries(HEADERS)) {
    const after = Buffer.concat([SSL_REQUEST, Buffer.from('after')]);
    const whole = Buffer.concat([header, after]);
    for (let first = 1; first < whole.length; first++) {
      for (const second of [first, Math.min(whole.length, first + 3)]) {
        const socket = fakeSocket();
        const read = readProxyHeader(socket, { mode: 'required', timeoutMs: 5000 });
        for (const chunk of [whole.subarray(0, first), whole.subarray(first, second), whole.subarray(second)]) {
          if (chunk.length > 0) socket.write(chunk);
        }
        socket.end();
        const result = await read;
        assert.deepEqual(result, parseProxyHeader(header), `${name} split at ${first}/${second}`);
        assert.deepEqual(await drain(socket), after, `${name} split at ${first}/${second}: the bytes after the header`);
      }
    }
  }
});

test('the socket reader: optional without a header hands back every byte; required closes without a word', async () => {
  const optional = fakeSocket();
  const read = readProxyHeader(optional, { mode: 'optional', timeoutMs: 5000 });
  optional.write(SSL_REQUEST.subarray(0, 1));
  optional.write(SSL_REQUEST.subarray(1));
  optional.end();
  assert.equal(await read, undefined);
  assert.deepEqual(await drain(optional), SSL_REQUEST);

  const required = fakeSocket();
  const refused = readProxyHeader(required, { mode: 'required', timeoutMs: 5000 });
  required.write(SSL_REQUEST);
  await assert.rejects(refused, { failure: ProxyHeaderFailure.Missing, code: 'TG_ERR_PROXY_HEADER' });
  assert.equal(required.destroyed, true);
});

test('the socket reader: a malformed header, a peer that leaves, and one that says nothing in time', async () => {
  const bad = fakeSocket();
  const badRead = readProxyHeader(bad, { mode: 'optional', timeoutMs: 5000 });
  bad.write(Buffer.concat([PROXY_V2_SIGNATURE, Buffer.from([0x11])]));
  await assert.rejects(badRead, { failure: ProxyHeaderFailure.Malformed });
  assert.equal(bad.destroyed, true);

  const leaving = fakeSocket();
  const leavingRead = readProxyHeader(leaving, { mode: 'required', timeoutMs: 5000 });
  leaving.write(localV2().subarray(0, 10));
  leaving.destroy();
  await assert.rejects(leavingRead, { failure: ProxyHeaderFailure.Closed });

  const silent = fakeSocket();
  const started = performance.now();
  await assert.rejects(readProxyHeader(silent, { mode: 'required', timeoutMs: 30 }), { failure: ProxyHeaderFailure.Timeout });
  assert.ok(performance.now() - started >= 25);
  assert.equal(silent.destroyed, true);

  const gone = fakeSocket();
  gone.destroy();
  await sleep(0);
  await assert.rejects(readProxyHeader(gone, { mode: 'optional', timeoutMs: 5000 }), { failure: ProxyHeaderFailure.Closed });
});

// ---------------------------------------------------------------------------------------------
// Fuzzing

const RUNS = { numRuns: 2000 };
const anyBytes = (maxLength = 600) => fc.uint8Array({ maxLength }).map((b) => Buffer.from(b));
/** Bytes that get past the first checks: after the v2 signature (a plausible byte 13), or `PROXY `. */
const headerLike = fc.oneof(
  fc
    .tuple(fc.constantFrom(0x20, 0x21, 0x22, 0x11), anyBytes(300))
    .map(([b, rest]) => Buffer.concat([PROXY_V2_SIGNATURE, Buffer.from([b]), rest])),
  fc
    .tuple(fc.constantFrom(0x00, 0x11, 0x12, 0x21, 0x22, 0x31, 0x32), fc.integer({ min: 0, max: 300 }), anyBytes(320))
    .map(([fam, len, rest]) => {
      const fixed = Buffer.from([0x21, fam, len >> 8, len & 0xff]);
      return Buffer.concat([PROXY_V2_SIGNATURE, fixed, rest]);
    }),
  fc
    .tuple(fc.constantFrom('TCP4 ', 'TCP6 ', 'UNKNOWN', ''), fc.string({ unit: 'binary-ascii', maxLength: 120 }))
    .map(([protocol, text]) => Buffer.from(`PROXY ${protocol}${text}`, 'latin1')),
  anyBytes(),
);

function outcome(bytes: Buffer): ProxyParseResult | ProxyHeaderError {
  try {
    return parseProxyHeader(bytes);
  } catch (error) {
    if (error instanceof ProxyHeaderError && error.failure === ProxyHeaderFailure.Malformed) return error;
    throw error;
  }
}

test('fuzz: any bytes give a result or a malformed ProxyHeaderError, never anything else', () => {
  fc.assert(
    fc.property(headerLike, (bytes) => {
      outcome(bytes);
    }),
    RUNS,
  );
});

test('fuzz: a header is decided by its own bytes only: nothing past its length is read, no prefix decides early', () => {
  fc.assert(
    fc.property(headerLike, anyBytes(64), (bytes, tail) => {
      const result = outcome(bytes);
      if (result instanceof ProxyHeaderError || result.kind === 'incomplete' || result.kind === 'absent') return;
      const header = bytes.subarray(0, result.length);
      assert.ok(result.length <= bytes.length);
      assert.deepEqual(outcome(header), result);
      assert.deepEqual(outcome(Buffer.concat([header, tail])), result);
      for (let split = 0; split < result.length; split++) {
        const early = outcome(header.subarray(0, split));
        assert.ok(!(early instanceof ProxyHeaderError) && early.kind === 'incomplete', `decided at ${split} of ${result.length}`);
      }
    }),
    RUNS,
  );
});

const octet = fc.integer({ min: 0, max: 255 });
const ipv4 = fc.tuple(octet, octet, octet, octet).map((o) => o.join('.'));
const ipv6 = fc
  .array(fc.integer({ min: 0, max: 0xffff }), { minLength: 8, maxLength: 8 })
  .map((g) => g.map((n) => n.toString(16)).join(':'));
const port = fc.integer({ min: 0, max: 65535 });
const tlvs = fc.array(
  fc.tuple(fc.integer({ min: 0, max: 255 }), anyBytes(40)).map(([type, value]) => tlv(type, value)),
  { maxLength: 4 },
);

test('fuzz: every v2 and v1 header a proxy may send reads back as sent, TLVs and trailing bytes aside', () => {
  fc.assert(
    fc.property(
      fc.oneof(ipv4, ipv6),
      fc.oneof(ipv4, ipv6),
      port,
      port,
      tlvs,
      anyBytes(32),
      fc.boolean(),
      (src, dst, sport, dport, extras, tail, v1) => {
        const family = src.includes(':') || dst.includes(':') ? 'ipv6' : 'ipv4';
        // A v1 line and the v2 builder take one family for both; an IPv4 address goes in as mapped IPv6.
        const widen = (address: string) => (family === 'ipv6' && !address.includes(':') ? `::ffff:${address}` : address);
        const source = { address: widen(src), port: sport };
        const destination = { address: widen(dst), port: dport };
        const header = v1 ? proxyV1(source, destination) : proxyV2(source, destination, extras);
        const result = parseProxyHeader(Buffer.concat([header, tail]));
        assert.equal(result.kind, 'proxy');
        assert.equal(result.length, header.length);
        assert.deepEqual(result.source, { address: canonical(source.address), port: sport });
        assert.deepEqual(result.destination, { address: canonical(destination.address), port: dport });
      },
    ),
    RUNS,
  );
});

/**
 * What the parser should make of an address the test wrote in its own long form: the text Node
 * prints for it (inet_ntop), an IPv4-mapped one as plain IPv4.
 */
function canonical(address: string): string {
  if (!address.includes(':')) return address;
  const text = new SocketAddress({ address, family: 'ipv6' }).address;
  return /^::ffff:(\d+\.\d+\.\d+\.\d+)$/.exec(text)?.[1] ?? text;
}

test('a socket address of an IPv4 client on a dual-stack listener reads as plain IPv4', () => {
  assert.equal(clientAddressOf('::ffff:10.0.0.1'), '10.0.0.1');
  assert.equal(clientAddressOf('10.0.0.1'), '10.0.0.1');
  assert.equal(clientAddressOf('2001:db8::1'), '2001:db8::1');
});
