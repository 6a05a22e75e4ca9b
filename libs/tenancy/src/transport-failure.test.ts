import assert from 'node:assert/strict';
import { test } from 'node:test';
import { isTransportFailure } from './transport-failure.ts';

function coded(code: string, options?: ErrorOptions): Error {
  return Object.assign(new Error(code, options), { code });
}

test('refused, reset and timed out are transport failures', () => {
  for (const code of [
    'ECONNREFUSED',
    'ECONNRESET',
    'EPIPE',
    'ETIMEDOUT',
    'UND_ERR_SOCKET',
    'UND_ERR_CONNECT_TIMEOUT',
    'UND_ERR_HEADERS_TIMEOUT',
    'UND_ERR_BODY_TIMEOUT',
  ]) {
    assert.equal(isTransportFailure(coded(code)), true, code);
  }
});

test('answers we did not like, and our own mistakes, are not', () => {
  for (const error of [
    coded('UND_ERR_RES_EXCEEDED_MAX_SIZE'),
    coded('UND_ERR_INVALID_ARG'),
    coded('ENOTFOUND'),
    new SyntaxError('bad JSON'),
    null,
    undefined,
    'ECONNRESET',
    42,
  ]) {
    assert.equal(isTransportFailure(error), false, String(error));
  }
});

test('the cause chain and AggregateError (happy eyeballs) are searched', () => {
  assert.equal(isTransportFailure(new Error('fetch failed', { cause: coded('ECONNRESET') })), true);
  assert.equal(isTransportFailure(new AggregateError([coded('ECONNREFUSED'), coded('ECONNREFUSED')], 'all addresses')), true);
});

test('a cause chain that loops ends', () => {
  const a = new Error('a');
  const b = new Error('b', { cause: a });
  (a as { cause?: unknown }).cause = b;
  assert.equal(isTransportFailure(a), false);
});
