import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { ProtocolError } from './errors.ts';
import {
  NoticeFieldCode,
  PasswordResponseKind,
  parseBackendMessage,
  parseFrontendMessage,
  parsePasswordMessage,
  parseSASLInitialResponse,
  parseSASLResponse,
  parseTerminate,
} from './messages.ts';

// Messages are built by hand here, not with serializer.ts, so that a mistake made the same
// way in both the parser and the serializer cannot hide.
function int32(value: number): Buffer {
  const buf = Buffer.alloc(4);
  buf.writeInt32BE(value);
  return buf;
}

function cstr(value: string): Buffer {
  return Buffer.from(`${value}\0`, 'utf8');
}

function frame(type: string, ...parts: (Buffer | number)[]): Buffer {
  const body = Buffer.concat(parts.map((part) => (typeof part === 'number' ? Buffer.from([part]) : part)));
  return Buffer.concat([Buffer.from(type, 'latin1'), int32(body.length + 4), body]);
}

describe('parseBackendMessage: authentication', () => {
  test('AuthenticationOk and AuthenticationCleartextPassword', () => {
    assert.deepEqual(parseBackendMessage(Buffer.from([0x52, 0, 0, 0, 8, 0, 0, 0, 0])), { kind: 'AuthenticationOk' });
    assert.deepEqual(parseBackendMessage(frame('R', int32(3))), { kind: 'AuthenticationCleartextPassword' });
    assert.throws(() => parseBackendMessage(frame('R', int32(0), 0)), /trailing/);
  });

  test('AuthenticationMD5Password carries a 4-byte salt', () => {
    const salt = Buffer.from([9, 8, 7, 6]);
    assert.deepEqual(parseBackendMessage(frame('R', int32(5), salt)), { kind: 'AuthenticationMD5Password', salt });
    assert.throws(() => parseBackendMessage(frame('R', int32(5), salt.subarray(0, 3))), /truncated/);
  });

  test('AuthenticationSASL lists mechanisms in order', () => {
    const message = frame('R', int32(10), cstr('SCRAM-SHA-256-PLUS'), cstr('SCRAM-SHA-256'), 0);
    assert.deepEqual(parseBackendMessage(message), {
      kind: 'AuthenticationSASL',
      mechanisms: ['SCRAM-SHA-256-PLUS', 'SCRAM-SHA-256'],
    });
    assert.throws(() => parseBackendMessage(frame('R', int32(10), 0)), /no mechanisms/);
    assert.throws(() => parseBackendMessage(frame('R', int32(10), cstr('SCRAM-SHA-256'))), ProtocolError);
  });

  test('AuthenticationSASLContinue and AuthenticationSASLFinal carry opaque data', () => {
    const data = Buffer.from('r=abc,s=xyz,i=4096');
    assert.deepEqual(parseBackendMessage(frame('R', int32(11), data)), { kind: 'AuthenticationSASLContinue', data });
    assert.deepEqual(parseBackendMessage(frame('R', int32(12), data)), { kind: 'AuthenticationSASLFinal', data });
  });

  test('methods the gateway does not speak, and unknown codes, are refused', () => {
    for (const code of [2, 7, 8, 9]) assert.throws(() => parseBackendMessage(frame('R', int32(code))), /unsupported/);
    assert.throws(() => parseBackendMessage(frame('R', int32(99))), /unknown authentication/);
  });
});

describe('parseBackendMessage: startup', () => {
  test('ParameterStatus', () => {
    const message = frame('S', cstr('server_version'), cstr('17.2'));
    assert.deepEqual(parseBackendMessage(message), { kind: 'ParameterStatus', name: 'server_version', value: '17.2' });
    assert.throws(() => parseBackendMessage(frame('S', cstr('x'))), ProtocolError);
  });

  test('BackendKeyData: 4 bytes in 3.0, up to 256 in 3.2', () => {
    const short = frame('K', int32(42), Buffer.from([1, 2, 3, 4]));
    assert.deepEqual(parseBackendMessage(short, { minorVersion: 0 }), {
      kind: 'BackendKeyData',
      processId: 42,
      secretKey: Buffer.from([1, 2, 3, 4]),
    });
    const long = frame('K', int32(42), Buffer.alloc(32, 5));
    assert.equal(parseBackendMessage(long, { minorVersion: 2 }).kind, 'BackendKeyData');
    assert.throws(() => parseBackendMessage(long, { minorVersion: 0 }), ProtocolError);
    assert.throws(() => parseBackendMessage(frame('K', int32(42), Buffer.alloc(257))), ProtocolError);
    assert.throws(() => parseBackendMessage(frame('K', int32(42), Buffer.alloc(3))), ProtocolError);
  });

  test('a cancel key is a copy: keeping it must not pin the chunk it came in', () => {
    const message = frame('K', int32(42), Buffer.alloc(32, 5));
    const parsed = parseBackendMessage(message);
    message.fill(0);
    assert.equal(parsed.kind === 'BackendKeyData' && parsed.secretKey.equals(Buffer.alloc(32, 5)), true);
  });

  test('ReadyForQuery', () => {
    for (const status of ['I', 'T', 'E'] as const) {
      assert.deepEqual(parseBackendMessage(frame('Z', status.charCodeAt(0))), { kind: 'ReadyForQuery', status });
    }
    assert.throws(() => parseBackendMessage(frame('Z', 0x58)), /transaction status/);
    assert.throws(() => parseBackendMessage(frame('Z')), ProtocolError);
  });

  const parseNegotiateProtocolVersionMinor = (message: Buffer): number => {
    const parsed = parseBackendMessage(message);
    assert.equal(parsed.kind, 'NegotiateProtocolVersion');
    return parsed.newestMinorVersion;
  };

  test('NegotiateProtocolVersion', () => {
    const message = frame('v', int32(0), int32(2), cstr('_pq_.a'), cstr('_pq_.b'));
    assert.deepEqual(parseBackendMessage(message), {
      kind: 'NegotiateProtocolVersion',
      newestMinorVersion: 0,
      unrecognizedOptions: ['_pq_.a', '_pq_.b'],
    });
    // Servers write the whole version (3.2 = 0x00030002); the minor is reported.
    assert.equal(parseNegotiateProtocolVersionMinor(frame('v', int32(0x00030002), int32(0))), 2);
    assert.throws(() => parseBackendMessage(frame('v', int32(0x00040000), int32(0))), ProtocolError);
    assert.throws(() => parseBackendMessage(frame('v', int32(0), int32(3), cstr('_pq_.a'))), ProtocolError);
    assert.throws(() => parseBackendMessage(frame('v', int32(0), int32(0x7fffffff))), ProtocolError);
    assert.throws(() => parseBackendMessage(frame('v', int32(0), int32(-1))), ProtocolError);
  });

  test('messages of a later phase are refused', () => {
    assert.throws(() => parseBackendMessage(frame('T', Buffer.alloc(2))), /unexpected server message type 'T'/);
  });

  test('a declared length that disagrees with the frame is refused', () => {
    const message = frame('S', cstr('a'), cstr('b'));
    message.writeInt32BE(message.length, 1);
    assert.throws(() => parseBackendMessage(message), /declared length/);
    assert.throws(() => parseBackendMessage(Buffer.from([0x5a, 0, 0])), ProtocolError);
  });
});

describe('parseBackendMessage: ErrorResponse and NoticeResponse', () => {
  test('reads every field code and keeps unknown ones', () => {
    const values = Object.keys(NoticeFieldCode).map((name) => `${name} value`);
    const codes = Object.values(NoticeFieldCode);
    const parts = codes.flatMap((code, i) => [code, cstr(values[i]!)]);
    const message = frame('E', ...parts, 0x59, cstr('future field'), 0);
    const parsed = parseBackendMessage(message);
    assert.equal(parsed.kind, 'ErrorResponse');
    const expected = Object.fromEntries(Object.keys(NoticeFieldCode).map((name, i) => [name, values[i]]));
    assert.deepEqual(parsed.fields, { ...expected, unknown: [[0x59, 'future field']] });
  });

  test('a NoticeResponse with the fields a server always sends', () => {
    const message = frame('N', 0x53, cstr('NOTICE'), 0x56, cstr('NOTICE'), 0x43, cstr('00000'), 0x4d, cstr('hi'), 0);
    assert.deepEqual(parseBackendMessage(message), {
      kind: 'NoticeResponse',
      fields: { severity: 'NOTICE', severityNonLocalized: 'NOTICE', code: '00000', message: 'hi' },
    });
  });

  test('S, C and M are required; a field may not repeat; the list must end', () => {
    assert.throws(() => parseBackendMessage(frame('E', 0x53, cstr('ERROR'), 0x43, cstr('XX000'), 0)), /lacks/);
    const repeated = frame('E', 0x53, cstr('ERROR'), 0x43, cstr('XX000'), 0x4d, cstr('a'), 0x4d, cstr('b'), 0);
    assert.throws(() => parseBackendMessage(repeated), /twice/);
    assert.throws(() => parseBackendMessage(frame('E', 0x53, cstr('ERROR'))), /truncated/);
    assert.throws(() => parseBackendMessage(frame('E', 0x53, Buffer.from('ERROR'))), /NUL-terminated/);
  });
});

describe('frontend messages', () => {
  test('PasswordMessage keeps the password as raw bytes', () => {
    const password = Buffer.from([0x73, 0xe9, 0x63]); // latin1 "séc": not UTF-8, still a password
    assert.deepEqual(parsePasswordMessage(frame('p', password, 0)), { kind: 'PasswordMessage', password });
    assert.throws(() => parsePasswordMessage(frame('p', password)), ProtocolError);
    assert.throws(() => parsePasswordMessage(frame('p', password, 0, 0)), /trailing/);
  });

  test('SASLInitialResponse with and without data', () => {
    const data = Buffer.from('n,,n=,r=nonce');
    assert.deepEqual(parseSASLInitialResponse(frame('p', cstr('SCRAM-SHA-256'), int32(data.length), data)), {
      kind: 'SASLInitialResponse',
      mechanism: 'SCRAM-SHA-256',
      data,
    });
    assert.deepEqual(parseSASLInitialResponse(frame('p', cstr('SCRAM-SHA-256'), int32(-1))), {
      kind: 'SASLInitialResponse',
      mechanism: 'SCRAM-SHA-256',
      data: null,
    });
  });

  test('SASLInitialResponse data length must match', () => {
    const data = Buffer.from('abc');
    for (const length of [2, 4, -2, 0x7fffffff]) {
      assert.throws(() => parseSASLInitialResponse(frame('p', cstr('SCRAM-SHA-256'), int32(length), data)), ProtocolError);
    }
    assert.throws(() => parseSASLInitialResponse(frame('p', cstr('SCRAM-SHA-256'))), ProtocolError);
  });

  test('SASLResponse and Terminate', () => {
    assert.deepEqual(parseSASLResponse(frame('p', Buffer.from('c=biws'))), {
      kind: 'SASLResponse',
      data: Buffer.from('c=biws'),
    });
    assert.deepEqual(parseTerminate(frame('X')), { kind: 'Terminate' });
    assert.throws(() => parseTerminate(frame('X', 0)), ProtocolError);
  });

  test('parseFrontendMessage reads a p as the server asked, and accepts Terminate', () => {
    const message = frame('p', cstr('secret'));
    assert.equal(parseFrontendMessage(message, PasswordResponseKind.Password).kind, 'PasswordMessage');
    assert.equal(parseFrontendMessage(message, PasswordResponseKind.SASL).kind, 'SASLResponse');
    assert.throws(() => parseFrontendMessage(message, PasswordResponseKind.SASLInitial), ProtocolError);
    assert.deepEqual(parseFrontendMessage(frame('X'), PasswordResponseKind.SASL), { kind: 'Terminate' });
    assert.throws(
      () => parseFrontendMessage(frame('Q', cstr('select 1')), PasswordResponseKind.Password),
      /expected a password response, got message type 'Q'/,
    );
  });
});
