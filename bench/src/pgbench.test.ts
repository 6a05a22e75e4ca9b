// The figures taken from pgbench: the nearest-rank percentile of its per-transaction latencies.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { percentile } from './pgbench.ts';

test('percentile is the nearest rank: p50 of 1..10 is 5, p99 is 10, p100 the largest, p0 the smallest', () => {
  const values = [7, 3, 10, 1, 9, 2, 8, 4, 6, 5];
  assert.equal(percentile(values, 50), 5);
  assert.equal(percentile(values, 99), 10);
  assert.equal(percentile(values, 100), 10);
  assert.equal(percentile(values, 0), 1);
  assert.equal(percentile([0.25], 99), 0.25);
  assert.throws(() => percentile([], 50), /no values/);
});
