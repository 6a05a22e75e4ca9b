import { test } from 'node:test';
import assert from 'node:assert/strict';
import { jsonDepthExceeds } from './json-depth.ts';

function nested(levels: number): unknown {
  let value: unknown = 1;
  for (let i = 0; i < levels; i++) value = i % 2 === 0 ? { a: value } : [value];
  return value;
}

test('depth counts objects and arrays, scalars add nothing, and 50,000 levels are counted without recursion', () => {
  assert.equal(jsonDepthExceeds(1, 0), false);
  assert.equal(jsonDepthExceeds({}, 1), false);
  assert.equal(jsonDepthExceeds({}, 0), true);
  assert.equal(jsonDepthExceeds(nested(32), 32), false);
  assert.equal(jsonDepthExceeds(nested(33), 32), true);
  assert.equal(jsonDepthExceeds({ a: 1, b: [1, 2, { c: 'x' }] }, 3), false);
  assert.equal(jsonDepthExceeds(JSON.parse('['.repeat(50_000) + ']'.repeat(50_000)), 32), true);
});
