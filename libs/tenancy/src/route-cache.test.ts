import { test } from 'node:test';
import assert from 'node:assert/strict';
import { decodeInvalidation, encodeInvalidation, routeFloorKey, routeKey } from './route-cache.ts';

test('an invalidation survives encoding, with a version and for a deleted tenant', () => {
  assert.deepEqual(decodeInvalidation(encodeInvalidation({ id: 'acme', version: 7 })), { id: 'acme', version: 7 });
  assert.deepEqual(decodeInvalidation(encodeInvalidation({ id: 'acme', version: null })), { id: 'acme', version: null });
});

test('anything that is not an invalidation decodes to null', () => {
  for (const raw of ['', 'acme', '{', 'null', '[]', '{"id":3,"version":1}', '{"id":"a","version":"1"}', '{"id":"a","version":1.5}']) {
    assert.equal(decodeInvalidation(raw), null, raw);
  }
});

test('route and floor keys are distinct per tenant', () => {
  assert.notEqual(routeKey('acme'), routeFloorKey('acme'));
  assert.notEqual(routeKey('acme'), routeKey('acme2'));
});
