import { test } from 'node:test';
import assert from 'node:assert/strict';
import { AddressBuckets } from './address-buckets.ts';

test('a bounded map of buckets per address and kind, forgetting the least recently seen address', () => {
  let now = 0;
  const buckets = new AddressBuckets({ perSecond: 1, size: 1 }, ['a', 'b'], { maxAddresses: 2, now: () => now });
  assert.equal(buckets.take('x', 'a'), true);
  assert.equal(buckets.take('x', 'a'), false);
  assert.equal(buckets.take('x', 'b'), true, 'each kind has its own bucket');
  assert.equal(buckets.take('y', 'a'), true);
  assert.equal(buckets.take('z', 'a'), true);
  assert.equal(buckets.size, 2);
  assert.equal(buckets.take('x', 'a'), true, 'x was forgotten, so it starts full');
  assert.equal(buckets.available('x', 'a'), false, 'looking does not take');
  assert.equal(buckets.available('never-seen', 'a'), true);
  now = 1000;
  assert.equal(buckets.take('z', 'a'), true, 'refilled after a second');
  assert.throws(() => new AddressBuckets({ perSecond: 0, size: 1 }, ['a']), RangeError);
});
