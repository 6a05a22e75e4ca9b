import assert from 'node:assert/strict';
import { test } from 'node:test';
import { CancelRateLimiter } from './rate-limit.ts';

test('the rate limiter keeps a bounded map, forgetting the least recently seen address', () => {
  const now = 0;
  const limiter = new CancelRateLimiter({ perSecond: 1, burst: 1, maxClients: 2 }, () => now);
  assert.equal(limiter.take('a', 'guess'), true);
  assert.equal(limiter.take('a', 'guess'), false);
  assert.equal(limiter.take('b', 'guess'), true);
  assert.equal(limiter.take('a', 'guess'), false, 'a is now the most recently seen');
  assert.equal(limiter.take('c', 'guess'), true);
  assert.equal(limiter.size, 2);
  assert.equal(limiter.take('b', 'guess'), true, 'b was forgotten, so it starts with a full bucket');
  assert.equal(limiter.take('c', 'guess'), false);
  assert.throws(() => new CancelRateLimiter({ burst: 0 }), RangeError);
});

test('guesses and matches from one address have separate allowances', () => {
  const limiter = new CancelRateLimiter({ perSecond: 1, burst: 2 }, () => 0);
  assert.equal(limiter.take('a', 'guess'), true);
  assert.equal(limiter.take('a', 'guess'), true);
  assert.equal(limiter.take('a', 'guess'), false);
  assert.equal(limiter.take('a', 'match'), true, 'guesses did not spend the allowance of real keys');
  assert.equal(limiter.take('a', 'match'), true);
  assert.equal(limiter.take('a', 'match'), false);
});
