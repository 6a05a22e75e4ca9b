import assert from 'node:assert/strict';
import { test } from 'node:test';
import { CancelRateLimiter } from './rate-limit.ts';

test('the rate limiter keeps a bounded map, forgetting the least recently seen address', () => {
  const now = 0;
  const limiter = new CancelRateLimiter({ perSecond: 1, burst: 1, maxClients: 2 }, () => now);
  assert.equal(limiter.take('a'), true);
  assert.equal(limiter.take('a'), false);
  assert.equal(limiter.take('b'), true);
  assert.equal(limiter.take('a'), false, 'a is now the most recently seen');
  assert.equal(limiter.take('c'), true);
  assert.equal(limiter.size, 2);
  assert.equal(limiter.take('b'), true, 'b was forgotten, so it starts with a full bucket');
  assert.equal(limiter.take('c'), false);
  assert.throws(() => new CancelRateLimiter({ burst: 0 }), RangeError);
});
