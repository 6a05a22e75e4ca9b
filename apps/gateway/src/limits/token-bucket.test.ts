import assert from 'node:assert/strict';
import { test } from 'node:test';
import { fullBucket, hasToken, isFull, takeToken } from './token-bucket.ts';

test('a bucket allows its size at once, then refills at its rate', () => {
  const limit = { perSecond: 2, size: 3 };
  const bucket = fullBucket(limit, 0);
  assert.deepEqual(
    [1, 2, 3, 4].map(() => takeToken(bucket, limit, 0)),
    [true, true, true, false],
  );
  assert.equal(takeToken(bucket, limit, 499), false, 'not yet a whole token');
  assert.equal(takeToken(bucket, limit, 500), true);
  assert.equal(takeToken(bucket, limit, 500), false);
});

test('a bucket never holds more than its size, however long it rested', () => {
  const limit = { perSecond: 10, size: 2 };
  const bucket = fullBucket(limit, 0);
  assert.equal(isFull(bucket, limit, 0), true);
  takeToken(bucket, limit, 0);
  assert.equal(isFull(bucket, limit, 50), false);
  assert.equal(isFull(bucket, limit, 100), true);
  const taken = [1, 2, 3].map(() => takeToken(bucket, limit, 3_600_000));
  assert.deepEqual(taken, [true, true, false]);
});

test('a clock that goes back adds nothing', () => {
  const limit = { perSecond: 1, size: 1 };
  const bucket = fullBucket(limit, 10_000);
  assert.equal(takeToken(bucket, limit, 10_000), true);
  assert.equal(takeToken(bucket, limit, 5_000), false);
});

test('a smaller limit applies at the next take', () => {
  const bucket = fullBucket({ perSecond: 100, size: 100 }, 0);
  assert.equal(takeToken(bucket, { perSecond: 1, size: 1 }, 0), true);
  assert.equal(takeToken(bucket, { perSecond: 1, size: 1 }, 0), false);
});

test('hasToken looks without taking', () => {
  const limit = { perSecond: 1, size: 1 };
  const bucket = fullBucket(limit, 0);
  assert.equal(hasToken(bucket, limit, 0), true);
  assert.equal(hasToken(bucket, limit, 0), true, 'looking took nothing');
  assert.equal(takeToken(bucket, limit, 0), true);
  assert.equal(hasToken(bucket, limit, 500), false);
  assert.equal(hasToken(bucket, limit, 1000), true);
});
