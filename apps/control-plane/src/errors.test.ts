import { test } from 'node:test';
import assert from 'node:assert/strict';
import { TenantValidationError } from '@tenantgate/tenancy';
import { ErrorCode, NotFoundError, toErrorReply, VersionConflictError, withDetails } from './errors.ts';

const LIMIT = 1024;

function fastifyError(code: string, statusCode: number, message = 'x'): Error {
  return Object.assign(new Error(message), { code, statusCode });
}

test('our errors keep their code, status and details', () => {
  const reply = toErrorReply(withDetails(new VersionConflictError('acme', 5, 4), { version: 5 }), LIMIT);
  assert.deepEqual(reply, {
    statusCode: 409,
    internal: false,
    body: {
      code: ErrorCode.VersionConflict,
      message: 'tenant "acme" is at version 5, not the version 4 given in If-Match',
      details: { version: 5 },
    },
  });
  assert.deepEqual(toErrorReply(new NotFoundError('tenant "x" not found'), LIMIT).body.details, {});
});

test('tenant validation issues become a 400 naming the fields', () => {
  const reply = toErrorReply(new TenantValidationError([{ path: '/backend/port', message: 'must be <= 65535' }]), LIMIT);
  assert.equal(reply.statusCode, 400);
  assert.equal(reply.body.code, ErrorCode.Validation);
  assert.equal(reply.body.message, 'invalid body: /backend/port must be <= 65535');
  assert.deepEqual(reply.body.details, { in: 'body', issues: [{ path: '/backend/port', message: 'must be <= 65535' }] });
});

test('Fastify schema errors become issues with JSON pointers; oneOf branches fold into one', () => {
  const error = Object.assign(new Error('body/x'), {
    statusCode: 400,
    validationContext: 'body',
    validation: [
      {
        keyword: 'additionalProperties',
        instancePath: '',
        schemaPath: '#/additionalProperties',
        params: { additionalProperty: 'pasword' },
      },
      { keyword: 'required', instancePath: '', schemaPath: '#/oneOf/0/required', params: { missingProperty: 'scramSecret' } },
      { keyword: 'oneOf', instancePath: '', schemaPath: '#/oneOf', params: {} },
      {
        keyword: 'maxLength',
        instancePath: '/backendUser',
        schemaPath: '#/properties/backendUser/maxLength',
        params: {},
        message: 'must NOT have more than 63 characters',
      },
    ],
  });
  assert.deepEqual(toErrorReply(error, LIMIT).body.details, {
    in: 'body',
    issues: [
      { path: '/pasword', message: 'is not a known field' },
      { path: '', message: 'give exactly one of "password" and "scramSecret"' },
      { path: '/backendUser', message: 'must NOT have more than 63 characters' },
    ],
  });
});

test("Fastify's body errors map to 413, 415 and 400", () => {
  assert.deepEqual(toErrorReply(fastifyError('FST_ERR_CTP_BODY_TOO_LARGE', 413), LIMIT).body, {
    code: ErrorCode.BodyTooLarge,
    message: 'the request body is larger than 1024 bytes',
    details: { limit: 1024 },
  });
  assert.equal(toErrorReply(fastifyError('FST_ERR_CTP_INVALID_MEDIA_TYPE', 415), LIMIT).body.code, ErrorCode.UnsupportedMediaType);
  assert.equal(toErrorReply(fastifyError('FST_ERR_CTP_EMPTY_JSON_BODY', 400), LIMIT).body.code, ErrorCode.MalformedBody);
  assert.equal(
    toErrorReply(Object.assign(new SyntaxError('Unexpected token'), { statusCode: 400 }), LIMIT).body.code,
    ErrorCode.MalformedBody,
  );
  assert.equal(toErrorReply(fastifyError('FST_ERR_CTP_INVALID_CONTENT_LENGTH', 400), LIMIT).body.code, ErrorCode.BadRequest);
});

test('anything else is a 500 that tells nothing of the fault', () => {
  for (const fault of [
    new Error('connect ECONNREFUSED 10.0.0.5:5432'),
    'a string',
    fastifyError('SOMETHING', 502, 'upstream at 10.0.0.5'),
  ]) {
    const reply = toErrorReply(fault, LIMIT);
    assert.deepEqual(reply, {
      statusCode: 500,
      internal: true,
      body: { code: ErrorCode.Internal, message: 'internal error', details: {} },
    });
  }
});
