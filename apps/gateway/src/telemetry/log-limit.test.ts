import { test } from 'node:test';
import assert from 'node:assert/strict';
import { LogRateLimit } from './log-limit.ts';

test('each kind writes its lines per second, then drops, and the next line written tells how many were dropped', () => {
  let now = 0;
  const limit = new LogRateLimit(2, () => now);
  assert.equal(limit.take('refused'), 0);
  assert.equal(limit.take('refused'), 0);
  assert.equal(limit.take('refused'), undefined);
  assert.equal(limit.take('refused'), undefined);
  assert.equal(limit.take('cancel request'), 0, 'another kind counts apart');
  now = 999;
  assert.equal(limit.take('refused'), undefined);
  now = 1000;
  assert.equal(limit.take('refused'), 3, 'the first line of the next second carries the count');
  assert.equal(limit.take('refused'), 0);
});
