import assert from 'node:assert/strict';
import { test } from 'node:test';
import { CachedRouteInvalidError } from './errors.ts';
import { answerVersion, decodeRouteAnswer, encodeRouteAnswer, foundAnswer, UNKNOWN_TENANT } from './route-answer.ts';
import { testRoute } from './testing/route.ts';

test('a route and "unknown" survive the Redis encoding', () => {
  const found = foundAnswer(testRoute('acme', { version: 9 }));
  assert.deepEqual(decodeRouteAnswer(encodeRouteAnswer(found), 'acme'), found);
  assert.equal(decodeRouteAnswer(encodeRouteAnswer(UNKNOWN_TENANT), 'ghost'), UNKNOWN_TENANT);
});

test('the encoding is the documented JSON', () => {
  assert.equal(encodeRouteAnswer(UNKNOWN_TENANT), '{"kind":"unknown"}');
  assert.deepEqual(JSON.parse(encodeRouteAnswer(foundAnswer(testRoute('acme')))), { kind: 'found', route: testRoute('acme') });
});

test('the fill version is the route version, 0 for "unknown"', () => {
  assert.equal(answerVersion(foundAnswer(testRoute('acme', { version: 12 }))), 12);
  assert.equal(answerVersion(UNKNOWN_TENANT), 0);
});

test('garbage under a route key is an error, not an answer', () => {
  const cases = [
    'not json',
    'null',
    '[]',
    '{"kind":"maybe"}',
    '{"kind":"found"}',
    JSON.stringify({ kind: 'found', route: testRoute('other') }),
    JSON.stringify({ kind: 'found', route: { ...testRoute('acme'), version: 0 } }),
  ];
  for (const raw of cases) assert.throws(() => decodeRouteAnswer(raw, 'acme'), CachedRouteInvalidError, raw);
});
