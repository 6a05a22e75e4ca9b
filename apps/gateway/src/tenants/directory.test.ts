// The error every tenant source raises when its directory cannot answer.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { TenantDirectoryUnreachableError } from './directory.ts';

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
