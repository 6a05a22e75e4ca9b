import { test } from 'node:test';
import assert from 'node:assert/strict';
import { etagOf, parseIfMatch } from './etag.ts';

test('an ETag is the quoted version', () => {
  assert.equal(etagOf(42), '"42"');
});

test('If-Match: absent or * match anything; strong tags name versions; weak tags never match', () => {
  assert.deepEqual(parseIfMatch(undefined), { kind: 'any' });
  assert.deepEqual(parseIfMatch('*'), { kind: 'any' });
  assert.deepEqual(parseIfMatch('"7"'), { kind: 'versions', versions: [7] });
  assert.deepEqual(parseIfMatch('"7", "9"'), { kind: 'versions', versions: [7, 9] });
  assert.deepEqual(parseIfMatch('W/"7"'), { kind: 'versions', versions: [] });
  assert.deepEqual(parseIfMatch('W/"7", "8"'), { kind: 'versions', versions: [8] });
});

test('If-Match that is not a list of version tags is invalid', () => {
  for (const bad of ['7', '"abc"', '"0"', '"7', '', '"1" "2"']) assert.deepEqual(parseIfMatch(bad), { kind: 'invalid' }, bad);
});
