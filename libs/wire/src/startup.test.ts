import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { ProtocolError } from './errors.ts';
import {
  ProtocolVersion,
  StartupRequestCode,
  parseStartupPacket,
  replicationRequest,
  serializeCancelRequest,
  serializeGSSENCRequest,
  serializeSSLRequest,
  serializeStartupMessage,
  startupPacketLength,
  serializeStartupPacket,
  type StartupMessage,
} from './startup.ts';

/** A startup packet built by hand: Int32 length, Int32 code, then raw body bytes. */
function packet(code: number, body: Buffer | string = Buffer.alloc(0)): Buffer {
  const rest = typeof body === 'string' ? Buffer.from(body, 'latin1') : body;
  const buf = Buffer.alloc(8 + rest.length);
  buf.writeInt32BE(buf.length, 0);
  buf.writeUInt32BE(code, 4);
  rest.copy(buf, 8);
  return buf;
}

function parseStartup(buf: Buffer): StartupMessage {
  const parsed = parseStartupPacket(buf);
  assert.equal(parsed.kind, 'StartupMessage');
  return parsed;
}

describe('parseStartupPacket', () => {
  test('SSLRequest and GSSENCRequest are exactly 8 bytes', () => {
    assert.deepEqual(parseStartupPacket(Buffer.from([0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f])), { kind: 'SSLRequest' });
    assert.deepEqual(parseStartupPacket(packet(StartupRequestCode.GSSENCRequest)), { kind: 'GSSENCRequest' });
    assert.throws(() => parseStartupPacket(packet(StartupRequestCode.SSLRequest, '\0\0\0\0')), ProtocolError);
  });

  test('CancelRequest with a 3.0 key (4 bytes) and a 3.2 key (32 bytes)', () => {
    const short = parseStartupPacket(packet(StartupRequestCode.CancelRequest, Buffer.from([0, 0, 0x30, 0x39, 1, 2, 3, 4])));
    assert.deepEqual(short, { kind: 'CancelRequest', processId: 12345, secretKey: Buffer.from([1, 2, 3, 4]) });
    const key = Buffer.alloc(32, 0xab);
    const long = parseStartupPacket(packet(StartupRequestCode.CancelRequest, Buffer.concat([Buffer.alloc(4), key])));
    assert.deepEqual(long, { kind: 'CancelRequest', processId: 0, secretKey: key });
  });

  test('a CancelRequest key is a copy of the packet bytes', () => {
    const bytes = packet(StartupRequestCode.CancelRequest, Buffer.from([0, 0, 0, 1, 9, 9, 9, 9]));
    const parsed = parseStartupPacket(bytes);
    bytes.fill(0);
    assert.deepEqual(parsed, { kind: 'CancelRequest', processId: 1, secretKey: Buffer.from([9, 9, 9, 9]) });
  });

  test('CancelRequest keys outside 4..256 bytes are refused', () => {
    for (const size of [0, 3, 257]) {
      const body = Buffer.alloc(4 + size);
      assert.throws(() => parseStartupPacket(packet(StartupRequestCode.CancelRequest, body)), ProtocolError, `key ${size}`);
    }
  });

  test('StartupMessage 3.0 keeps parameters in order', () => {
    const parsed = parseStartup(packet(ProtocolVersion.V3_0, 'user\0alice\0database\0app\0application_name\0psql\0\0'));
    assert.equal(parsed.minorVersion, 0);
    assert.deepEqual(
      [...parsed.parameters],
      [
        ['user', 'alice'],
        ['database', 'app'],
        ['application_name', 'psql'],
      ],
    );
    assert.equal(parsed.protocolOptions.size, 0);
  });

  test('StartupMessage 3.2 keeps _pq_ options apart', () => {
    const parsed = parseStartup(packet(ProtocolVersion.V3_2, 'user\0bob\0_pq_.foo\0on\0options\0-c tenant=acme\0\0'));
    assert.equal(parsed.minorVersion, 2);
    assert.deepEqual(
      [...parsed.parameters],
      [
        ['user', 'bob'],
        ['options', '-c tenant=acme'],
      ],
    );
    assert.deepEqual([...parsed.protocolOptions], [['_pq_.foo', 'on']]);
  });

  test('reports an unknown minor version for NegotiateProtocolVersion', () => {
    assert.equal(parseStartup(packet((3 << 16) | 7, 'user\0u\0\0')).minorVersion, 7);
  });

  test('refuses another major version, and unknown request codes', () => {
    assert.throws(() => parseStartupPacket(packet(2 << 16, 'user\0u\0\0')), /unsupported frontend protocol 2\.0/);
    assert.throws(() => parseStartupPacket(packet(4 << 16, 'user\0u\0\0')), ProtocolError);
    assert.throws(() => parseStartupPacket(packet((1234 << 16) | 5681, 'user\0u\0\0')), /1234\.5681/);
  });

  test('user is required and must not be empty', () => {
    assert.throws(() => parseStartupPacket(packet(ProtocolVersion.V3_0, 'database\0app\0\0')), /no PostgreSQL user name/);
    assert.throws(() => parseStartupPacket(packet(ProtocolVersion.V3_0, 'user\0\0\0')), /no PostgreSQL user name/);
    assert.throws(() => parseStartupPacket(packet(ProtocolVersion.V3_0)), ProtocolError);
  });

  test('a repeated name is refused, so a second user cannot hide behind the first', () => {
    assert.throws(() => parseStartupPacket(packet(ProtocolVersion.V3_0, 'user\0a\0user\0b\0\0')), /appears twice/);
    assert.throws(() => parseStartupPacket(packet(ProtocolVersion.V3_2, 'user\0a\0_pq_.x\0\0_pq_.x\0\0\0')), /appears twice/);
  });

  test('layout errors are ProtocolErrors', () => {
    const bodies = [
      'user\0alice\0', // no terminator
      'user\0alice', // value not terminated
      'user\0', // name without value
      'user\0alice\0\0x', // bytes after the terminator
      'user\0alice\0\0\0', // two terminators
    ];
    for (const body of bodies) {
      assert.throws(() => parseStartupPacket(packet(ProtocolVersion.V3_0, body)), ProtocolError, JSON.stringify(body));
    }
  });

  test('names and values must be UTF-8', () => {
    assert.throws(() => parseStartupPacket(packet(ProtocolVersion.V3_0, 'user\0al\xffce\0\0')), /UTF-8/);
    const parsed = parseStartup(packet(ProtocolVersion.V3_0, Buffer.from('user\0zoë\0\0', 'utf8')));
    assert.equal(parsed.parameters.get('user'), 'zoë');
  });

  test('the declared length must match the packet', () => {
    const buf = packet(ProtocolVersion.V3_0, 'user\0u\0\0');
    buf.writeInt32BE(buf.length + 1, 0);
    assert.throws(() => parseStartupPacket(buf), /length does not match/);
    assert.throws(() => parseStartupPacket(Buffer.from([0, 0, 0, 4])), ProtocolError);
    assert.throws(() => parseStartupPacket(packet(ProtocolVersion.V3_0, 'x'.repeat(10_000))), ProtocolError);
  });
});

describe('serialize startup packets', () => {
  test('writes the same bytes libpq does', () => {
    assert.deepEqual(serializeSSLRequest(), Buffer.from([0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f]));
    assert.deepEqual(serializeGSSENCRequest(), Buffer.from([0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x30]));
    const startup = serializeStartupMessage({
      minorVersion: 0,
      parameters: new Map([
        ['user', 'alice'],
        ['database', 'app'],
      ]),
    });
    assert.deepEqual(startup, packet(ProtocolVersion.V3_0, 'user\0alice\0database\0app\0\0'));
  });

  test('writes protocol options after parameters and defaults to 3.2', () => {
    const startup = serializeStartupMessage({
      parameters: new Map([['user', 'u']]),
      protocolOptions: new Map([['_pq_.x', '1']]),
    });
    assert.deepEqual(startup, packet(ProtocolVersion.V3_2, 'user\0u\0_pq_.x\x001\0\0'));
  });

  test('a CancelRequest round-trips', () => {
    const packetBytes = serializeCancelRequest(-5, Buffer.alloc(256, 1));
    assert.deepEqual(parseStartupPacket(packetBytes), { kind: 'CancelRequest', processId: -5, secretKey: Buffer.alloc(256, 1) });
    assert.throws(() => serializeCancelRequest(1, Buffer.alloc(3)), ProtocolError);
  });

  test('a StartupMessage round-trips through serializeStartupPacket', () => {
    const message: StartupMessage = {
      kind: 'StartupMessage',
      minorVersion: 2,
      parameters: new Map([
        ['user', 'ü'],
        ['options', ''],
      ]),
      protocolOptions: new Map([['_pq_.a', 'b']]),
    };
    assert.deepEqual(parseStartupPacket(serializeStartupPacket(message)), message);
  });

  test('refuses what cannot be written faithfully', () => {
    const cases = [
      {
        parameters: new Map([
          ['user', 'a\0database'],
          ['x', 'y'],
        ]),
      }, // NUL would smuggle a parameter
      { parameters: new Map([['database', 'app']]) }, // no user
      {
        parameters: new Map([
          ['user', 'u'],
          ['_pq_.x', '1'],
        ]),
      }, // option among parameters
      { parameters: new Map([['user', 'u']]), protocolOptions: new Map([['x', '1']]) },
      {
        parameters: new Map([
          ['user', 'u'],
          ['', 'v'],
        ]),
      },
      { parameters: new Map([['user', 'u'.repeat(10_000)]]) }, // over 10000 bytes
      { parameters: new Map([['user', 'u']]), minorVersion: 65_536 },
    ];
    for (const init of cases) assert.throws(() => serializeStartupMessage(init), ProtocolError);
  });
});

test('startupPacketLength is the length of the packet serializeStartupMessage writes', () => {
  const parameters = new Map([
    ['user', 'app'],
    ['database', 'ünïcode'],
  ]);
  const protocolOptions = new Map([['_pq_.test', 'x']]);
  assert.equal(startupPacketLength(parameters), serializeStartupMessage({ parameters }).length);
  assert.equal(startupPacketLength(parameters, protocolOptions), serializeStartupMessage({ parameters, protocolOptions }).length);
});

describe('replicationRequest', () => {
  test("reads the parameter as PostgreSQL does: database, parse_bool's words and prefixes, or nothing", () => {
    const cases: [string | undefined, string | undefined][] = [
      [undefined, 'none'],
      ['database', 'logical'],
      ['Database', undefined],
      ...['true', 't', 'TRUE', 'yes', 'y', 'on', 'On', '1'].map((v): [string, string] => [v, 'physical']),
      ...['false', 'f', 'fa', 'no', 'n', 'off', 'of', 'OFF', '0'].map((v): [string, string] => [v, 'none']),
      ...['', 'o', 'maybe', ' on', '2', 'truex', 'databases'].map((v): [string, undefined] => [v, undefined]),
    ];
    for (const [value, expected] of cases) assert.equal(replicationRequest(value), expected, String(value));
  });
});
