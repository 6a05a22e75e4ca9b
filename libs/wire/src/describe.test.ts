import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { describeBackendMessage, describeFrontendMessage, describeStartupParameters, passwordResponseAfter, REDACTED } from './describe.ts';
import { AuthenticationCode, PasswordResponseKind } from './messages.ts';
import {
  serializeAuthenticationMD5Password,
  serializeAuthenticationSASL,
  serializeAuthenticationSASLContinue,
  serializeAuthenticationSASLFinal,
  serializeBackendKeyData,
  serializeErrorResponse,
  serializeParameterStatus,
  serializePasswordMessage,
  serializeReadyForQuery,
  serializeSASLInitialResponse,
  serializeSASLResponse,
} from './serializer.ts';

const HIDDEN = { includeQueries: false } as const;
const SHOWN = { includeQueries: true } as const;

/** Type byte and body of one serialized message. */
function split(message: Buffer): [number, Buffer] {
  return [message[0] as number, message.subarray(5)];
}

/** A message from its type and body parts (strings end with NUL). */
function frame(type: string, ...parts: (string | Buffer)[]): [number, Buffer] {
  return [type.charCodeAt(0), Buffer.concat(parts.map((p) => (typeof p === 'string' ? Buffer.from(`${p}\0`) : p)))];
}

function int16(value: number): Buffer {
  const b = Buffer.alloc(2);
  b.writeInt16BE(value);
  return b;
}

function int32(value: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeInt32BE(value);
  return b;
}

test('authentication messages: names and mechanisms, never SCRAM data, MD5 salts or passwords', () => {
  assert.deepEqual(describeBackendMessage(...split(serializeAuthenticationSASL(['SCRAM-SHA-256-PLUS', 'SCRAM-SHA-256'])), HIDDEN), {
    type: 'AuthenticationSASL',
    mechanisms: ['SCRAM-SHA-256-PLUS', 'SCRAM-SHA-256'],
  });
  const serverFirst = Buffer.from('r=clientnonceservernonce,s=c2FsdA==,i=4096');
  for (const message of [serializeAuthenticationSASLContinue(serverFirst), serializeAuthenticationSASLFinal(Buffer.from('v=signature'))]) {
    const described = describeBackendMessage(...split(message), SHOWN);
    assert.equal(described.data, REDACTED);
    assert.ok(!JSON.stringify(described).includes('nonce') && !JSON.stringify(described).includes('signature'));
  }
  assert.equal(describeBackendMessage(...split(serializeAuthenticationMD5Password(Buffer.from('salt'))), SHOWN).data, REDACTED);
  const initial = describeFrontendMessage(...split(serializeSASLInitialResponse('SCRAM-SHA-256', Buffer.from('n,,n=,r=nonce'))), {
    ...SHOWN,
    expected: PasswordResponseKind.SASLInitial,
  });
  assert.deepEqual(initial, { type: 'SASLInitialResponse', mechanism: 'SCRAM-SHA-256', data: REDACTED });
  const final = describeFrontendMessage(...split(serializeSASLResponse(Buffer.from('c=biws,r=nonce,p=proof'))), {
    ...SHOWN,
    expected: PasswordResponseKind.SASL,
  });
  assert.deepEqual(final, { type: 'SASLResponse', data: REDACTED });
  assert.deepEqual(describeFrontendMessage(...split(serializePasswordMessage('hunter2')), SHOWN), {
    type: 'PasswordMessage',
    password: REDACTED,
  });
});

test('which p message follows which authentication request', () => {
  assert.equal(passwordResponseAfter(AuthenticationCode.SASL, undefined), PasswordResponseKind.SASLInitial);
  assert.equal(passwordResponseAfter(AuthenticationCode.SASLContinue, PasswordResponseKind.SASLInitial), PasswordResponseKind.SASL);
  assert.equal(passwordResponseAfter(AuthenticationCode.CleartextPassword, undefined), PasswordResponseKind.Password);
  assert.equal(passwordResponseAfter(AuthenticationCode.Ok, PasswordResponseKind.SASL), PasswordResponseKind.SASL);
});

test('session messages: keys redacted, statuses and tags shown', () => {
  assert.deepEqual(describeBackendMessage(...split(serializeBackendKeyData(42, Buffer.from('abcd'))), SHOWN), {
    type: 'BackendKeyData',
    processId: 42,
    secretKey: REDACTED,
  });
  assert.deepEqual(describeBackendMessage(...split(serializeParameterStatus('TimeZone', 'UTC')), HIDDEN), {
    type: 'ParameterStatus',
    name: 'TimeZone',
    value: 'UTC',
  });
  assert.deepEqual(describeBackendMessage(...split(serializeReadyForQuery('T')), HIDDEN), { type: 'ReadyForQuery', status: 'T' });
  assert.deepEqual(describeBackendMessage(...frame('C', 'INSERT 0 1'), HIDDEN), { type: 'CommandComplete', tag: 'INSERT 0 1' });
  assert.deepEqual(describeBackendMessage(...frame('W', Buffer.from([0]), int16(0)), HIDDEN), {
    type: 'CopyBothResponse',
    format: 'text',
    columns: 0,
  });
  assert.deepEqual(describeBackendMessage(...frame('d', Buffer.from('w payload')), SHOWN), { type: 'CopyData' });
  assert.deepEqual(describeBackendMessage(0x7e, Buffer.alloc(0), HIDDEN), { type: 'Unknown(0x7e)' });
});

test('errors show severity and SQLSTATE; their words, which may quote values, only with includeQueries', () => {
  const error = serializeErrorResponse({
    severity: 'ERROR',
    code: '23505',
    message: 'duplicate key value violates unique constraint "users_email_key"',
    detail: 'Key (email)=(ann@example.com) already exists.',
  });
  assert.deepEqual(describeBackendMessage(...split(error), HIDDEN), { type: 'ErrorResponse', severity: 'ERROR', code: '23505' });
  assert.deepEqual(describeBackendMessage(...split(error), SHOWN), {
    type: 'ErrorResponse',
    severity: 'ERROR',
    code: '23505',
    message: 'duplicate key value violates unique constraint "users_email_key"',
    detail: 'Key (email)=(ann@example.com) already exists.',
  });
});

test('queries: text only with includeQueries, bound values never, long text cut', () => {
  assert.deepEqual(describeFrontendMessage(...frame('Q', 'select secret'), HIDDEN), { type: 'Query' });
  assert.deepEqual(describeFrontendMessage(...frame('Q', 'select 1'), SHOWN), { type: 'Query', query: 'select 1' });
  assert.deepEqual(describeFrontendMessage(...frame('P', 's1', 'select $1', int16(1), int32(25)), SHOWN), {
    type: 'Parse',
    statement: 's1',
    query: 'select $1',
    parameterTypes: 1,
  });
  const bind = frame('B', '', 's1', int16(0), int16(1), int32(5), Buffer.from('value'), int16(0));
  assert.deepEqual(describeFrontendMessage(...bind, SHOWN), { type: 'Bind', portal: '', statement: 's1', parameters: 1 });
  assert.deepEqual(describeFrontendMessage(...frame('E', '', int32(0)), HIDDEN), { type: 'Execute', portal: '', maxRows: 0 });
  assert.deepEqual(describeFrontendMessage(...frame('D', Buffer.from('S'), 's1'), HIDDEN), {
    type: 'Describe',
    what: 'statement',
    name: 's1',
  });
  const long = describeFrontendMessage(...frame('Q', 'x'.repeat(5000)), SHOWN);
  assert.equal(String(long.query).length, 2049);
  assert.ok(String(long.query).endsWith('…'));
});

test('startup parameters are shown, but one named like a secret is not', () => {
  const parameters = new Map([
    ['user', 'app'],
    ['application_name', 'psql'],
    ['options', '-c my.password=x'],
    ['api_token', 'abc'],
  ]);
  assert.deepEqual(describeStartupParameters(parameters), {
    user: 'app',
    application_name: 'psql',
    options: REDACTED,
    api_token: REDACTED,
  });
});

test('a message cut short, or any bytes at all, are described without throwing', () => {
  fc.assert(
    fc.property(fc.integer({ min: 0, max: 255 }), fc.uint8Array({ maxLength: 64 }), fc.boolean(), (type, body, includeQueries) => {
      const buffer = Buffer.from(body);
      assert.equal(typeof describeBackendMessage(type, buffer, { includeQueries }).type, 'string');
      assert.equal(typeof describeFrontendMessage(type, buffer, { includeQueries }).type, 'string');
    }),
  );
});
