import assert from 'node:assert/strict';
import { test } from 'node:test';
import { FrameDecoder, parseBackendMessage, SqlState } from '@tenantgate/wire';
import {
  BackendCertificateExpiredError,
  BackendError,
  BackendErrorCode,
  BackendNoTlsError,
  BackendStartupError,
  BackendTimeoutError,
  maskHbaHost,
  Refusal,
  TenantDirectoryUnreachableError,
} from './errors.ts';
import { backendMessages } from './testing/front-door.ts';

function fieldsOf(response: Buffer) {
  const decoder = new FrameDecoder();
  decoder.push(response);
  const message = parseBackendMessage(decoder.next() as Buffer);
  assert.equal(message.kind, 'ErrorResponse');
  return message.fields;
}

test('a backend failure reaches the client as FATAL 08001 with its message only', () => {
  const error = new BackendCertificateExpiredError('certificate has expired', {
    phase: 'tls',
    logDetail: 'backend 10.0.3.17:5432 (server name acme.internal): CERT_HAS_EXPIRED',
  });
  assert.ok(error instanceof BackendError);
  assert.equal(error.name, 'BackendCertificateExpiredError');
  assert.equal(error.code, 'TG_ERR_BACKEND_CERT_EXPIRED');
  assert.deepEqual(fieldsOf(error.toErrorResponse()), {
    severity: 'FATAL',
    severityNonLocalized: 'FATAL',
    code: '08001',
    message: "could not verify the tenant database's certificate: certificate has expired",
  });
  const timeout = new BackendTimeoutError(250, { phase: 'connect', logDetail: 'x' });
  assert.equal(timeout.message, "timed out connecting to the tenant's database");
  assert.equal(timeout.timeoutMs, 250);
  assert.equal(new BackendNoTlsError({ phase: 'ssl-request', logDetail: 'x' }).sqlState, '08001');
});

test('codes are stable and distinct', () => {
  const codes = Object.values(BackendErrorCode);
  assert.equal(new Set(codes).size, codes.length);
  for (const code of codes) assert.match(code, /^TG_ERR_BACKEND_[A-Z_]+$/);
});

test("the backend's own error is forwarded with its fields, the gateway's address masked", () => {
  const error = new BackendStartupError(
    {
      severity: 'FATAL',
      code: '28000',
      message: 'no pg_hba.conf entry for host "10.0.1.5", user "app", database "app", SSL encryption',
      detail: 'a detail',
      hint: 'ask the owner',
      file: 'auth.c',
    },
    { phase: 'startup', logDetail: 'backend 10.0.3.17:5432: FATAL 28000' },
  );
  assert.equal(error.sqlState, '28000');
  assert.equal(error.code, 'TG_ERR_BACKEND_STARTUP');
  assert.equal(error.hint, 'ask the owner');
  assert.deepEqual(fieldsOf(error.toErrorResponse()), {
    severity: 'FATAL',
    severityNonLocalized: 'FATAL',
    code: '28000',
    message: 'no pg_hba.conf entry for host "(the gateway)", user "app", database "app", SSL encryption',
    detail: 'a detail',
    hint: 'ask the owner',
  });
  assert.equal(
    maskHbaHost('pg_hba.conf rejects connection for host "::1", user "a"'),
    'pg_hba.conf rejects connection for host "(the gateway)", user "a"',
  );
  assert.equal(maskHbaHost('database "x" does not exist'), 'database "x" does not exist');
});

test('a refusal becomes one FATAL ErrorResponse with its SQLSTATE, detail and hint', () => {
  const refusal = new Refusal(SqlState.ConnectionRejected, 'no tenant', { detail: 'd', hint: 'h' });
  assert.equal(refusal.code, 'TG_ERR_REFUSED');
  assert.deepEqual(backendMessages(refusal.toErrorResponse()), [
    {
      kind: 'ErrorResponse',
      fields: { severity: 'FATAL', severityNonLocalized: 'FATAL', code: '08004', message: 'no tenant', detail: 'd', hint: 'h' },
    },
  ]);
  const bare = backendMessages(new Refusal('28000', 'TLS is required').toErrorResponse())[0];
  assert.deepEqual(bare, {
    kind: 'ErrorResponse',
    fields: { severity: 'FATAL', severityNonLocalized: 'FATAL', code: '28000', message: 'TLS is required' },
  });
});

test('a directory that cannot answer is 08001 with a message for a person', () => {
  const error = new TenantDirectoryUnreachableError('GET http://10.0.0.5/v1/routes/acme: ECONNREFUSED');
  assert.equal(error.code, 'TG_ERR_TENANT_DIRECTORY_UNREACHABLE');
  assert.equal(error.sqlState, '08001');
  assert.equal(error.message, 'the tenant directory is unreachable');
  const response = error.toErrorResponse();
  assert.equal(String.fromCharCode(response[0]), 'E');
  assert.match(response.toString('latin1'), /SFATAL\0.*C08001\0Mthe tenant directory is unreachable\0/s);
  assert.doesNotMatch(response.toString('latin1'), /10\.0\.0\.5/);
});
