import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { ProtocolError } from './errors.ts';
import { parseBackendMessage } from './messages.ts';
import {
  buildErrorResponse,
  buildNoticeResponse,
  serializeAuthenticationMD5Password,
  serializeAuthenticationOk,
  serializeAuthenticationSASL,
  serializeAuthenticationSASLContinue,
  serializeBackendKeyData,
  serializeErrorResponse,
  serializeNegotiateProtocolVersion,
  serializeParameterStatus,
  serializePasswordMessage,
  serializeReadyForQuery,
  serializeSASLInitialResponse,
  serializeSASLResponse,
  serializeTerminate,
} from './serializer.ts';

/** Expected bytes written as `'R' 00000008 00000000`-style hex with a leading type letter. */
function bytes(type: string, hex: string, ...text: string[]): Buffer {
  return Buffer.concat([
    Buffer.from(type, 'latin1'),
    Buffer.from(hex.replaceAll(' ', ''), 'hex'),
    ...text.map((t) => Buffer.from(t, 'latin1')),
  ]);
}

describe('serialize backend messages', () => {
  test('exact bytes of the authentication requests', () => {
    assert.deepEqual(serializeAuthenticationOk(), bytes('R', '00000008 00000000'));
    assert.deepEqual(serializeAuthenticationMD5Password(Buffer.from([1, 2, 3, 4])), bytes('R', '0000000c 00000005 01020304'));
    assert.deepEqual(
      serializeAuthenticationSASL(['SCRAM-SHA-256-PLUS', 'SCRAM-SHA-256']),
      bytes('R', '0000002a 0000000a', 'SCRAM-SHA-256-PLUS\0SCRAM-SHA-256\0\0'),
    );
    assert.deepEqual(serializeAuthenticationSASLContinue(Buffer.from('r=1')), bytes('R', '0000000b 0000000b', 'r=1'));
  });

  test('ParameterStatus, BackendKeyData, ReadyForQuery, NegotiateProtocolVersion', () => {
    assert.deepEqual(serializeParameterStatus('a', 'b'), bytes('S', '00000008', 'a\0b\0'));
    assert.deepEqual(serializeBackendKeyData(7, Buffer.from([1, 2, 3, 4])), bytes('K', '0000000c 00000007 01020304'));
    assert.deepEqual(serializeReadyForQuery('T'), bytes('Z', '00000005', 'T'));
    assert.deepEqual(serializeNegotiateProtocolVersion(0, ['_pq_.x']), bytes('v', '00000013 00030000 00000001', '_pq_.x\0'));
  });

  test('a 3.0 client only takes a 4-byte cancel key', () => {
    assert.throws(() => serializeBackendKeyData(7, Buffer.alloc(32), 0), ProtocolError);
    assert.equal(serializeBackendKeyData(7, Buffer.alloc(32), 2).length, 1 + 4 + 4 + 32);
    assert.throws(() => serializeBackendKeyData(7, Buffer.alloc(257)), ProtocolError);
  });

  test('refuses strings with a NUL, which would end them early', () => {
    assert.throws(() => serializeParameterStatus('a\0b', 'c'), /NUL/);
    assert.throws(() => serializeAuthenticationSASL(['SCRAM\0']), /NUL/);
    assert.throws(() => serializeAuthenticationSASL([]), ProtocolError);
    assert.throws(() => serializeErrorResponse({ severity: 'ERROR', code: 'XX000', message: 'a\0M' }), /NUL/);
  });

  test('refuses a bad ReadyForQuery status and MD5 salt', () => {
    assert.throws(() => serializeReadyForQuery('X' as 'I'), ProtocolError);
    assert.throws(() => serializeAuthenticationMD5Password(Buffer.alloc(5)), ProtocolError);
  });
});

describe('buildErrorResponse', () => {
  test('writes S and V from the severity, then the other fields in wire order', () => {
    const message = buildErrorResponse({
      severity: 'FATAL',
      code: '08P01',
      message: 'invalid startup packet',
      hint: 'use sslmode=require',
    });
    assert.deepEqual(message, bytes('E', '00000047', 'SFATAL\0VFATAL\0C08P01\0Minvalid startup packet\0Huse sslmode=require\0\0'));
    assert.deepEqual(parseBackendMessage(message), {
      kind: 'ErrorResponse',
      fields: {
        severity: 'FATAL',
        severityNonLocalized: 'FATAL',
        code: '08P01',
        message: 'invalid startup packet',
        hint: 'use sslmode=require',
      },
    });
  });

  test('buildNoticeResponse is an N', () => {
    const message = buildNoticeResponse({ severity: 'WARNING', code: '01000', message: 'careful', detail: 'd' });
    assert.equal(message[0], 0x4e);
    const parsed = parseBackendMessage(message);
    assert.equal(parsed.kind, 'NoticeResponse');
    assert.equal(parsed.fields.detail, 'd');
  });

  test('text is UTF-8 and the length counts bytes, not characters', () => {
    const message = buildErrorResponse({ severity: 'ERROR', code: '28P01', message: 'mot de passe erroné ✗' });
    assert.equal(message.readInt32BE(1), message.length - 1);
    const parsed = parseBackendMessage(message);
    assert.equal(parsed.kind === 'ErrorResponse' && parsed.fields.message, 'mot de passe erroné ✗');
  });

  test('refuses a SQLSTATE that is not five digits or capitals', () => {
    for (const code of ['8P01', '08p01', '08P011', '']) {
      assert.throws(() => buildErrorResponse({ severity: 'FATAL', code, message: 'x' }), ProtocolError, code);
    }
  });
});

describe('serialize frontend messages', () => {
  test('exact bytes', () => {
    assert.deepEqual(serializePasswordMessage('pw'), bytes('p', '00000007', 'pw\0'));
    assert.deepEqual(serializePasswordMessage(Buffer.from([0xe9])), bytes('p', '00000006 e9 00'));
    assert.deepEqual(serializeSASLInitialResponse('M', null), bytes('p', '0000000a', 'M\0', '\xff\xff\xff\xff'));
    assert.deepEqual(serializeSASLInitialResponse('M', Buffer.from('ab')), bytes('p', '0000000c', 'M\0', '\0\0\0\x02ab'));
    assert.deepEqual(serializeSASLResponse(Buffer.from('xyz')), bytes('p', '00000007', 'xyz'));
    assert.deepEqual(serializeTerminate(), bytes('X', '00000004'));
  });

  test('a password with a NUL cannot be written', () => {
    assert.throws(() => serializePasswordMessage('a\0b'), /NUL/);
    assert.throws(() => serializePasswordMessage(Buffer.from([1, 0, 2])), /NUL/);
  });
});
