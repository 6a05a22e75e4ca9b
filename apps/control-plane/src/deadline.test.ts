import { test } from 'node:test';
import assert from 'node:assert/strict';
import { settleWithin } from './deadline.ts';

test('settleWithin gives the value, or the fallback when the promise fails or is late', async () => {
  assert.equal(await settleWithin(Promise.resolve('up'), 1000, 'down'), 'up');
  assert.equal(await settleWithin(Promise.reject(new Error('refused')), 1000, 'down'), 'down');
  assert.equal(await settleWithin(new Promise<string>(() => {}), 10, 'down'), 'down');
});
