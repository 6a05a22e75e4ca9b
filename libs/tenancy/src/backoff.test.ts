import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { backoffCeiling, fullJitterDelay } from './backoff.ts';

const policy = { baseMs: 50, maxMs: 1_000 };

test('the window doubles from the base and stops at the cap', () => {
  assert.deepEqual(
    [0, 1, 2, 3, 4, 5, 6, 100, 5000].map((n) => backoffCeiling(n, policy)),
    [50, 100, 200, 400, 800, 1_000, 1_000, 1_000, 1_000],
  );
  assert.equal(backoffCeiling(-3, policy), 50);
});

test('the delay spans the whole window: 0 at the bottom, just under the ceiling at the top', () => {
  assert.equal(
    fullJitterDelay(3, policy, () => 0),
    0,
  );
  assert.equal(
    fullJitterDelay(3, policy, () => 0.999_999),
    399,
  );
  assert.equal(
    fullJitterDelay(20, policy, () => 0.999_999),
    999,
  );
});

test('every delay is a whole number in [0, ceiling) (0 when the window is empty)', () => {
  fc.assert(
    fc.property(
      fc.integer({ min: 0, max: 2_000 }),
      fc.integer({ min: 0, max: 10_000 }),
      fc.integer({ min: 0, max: 120_000 }),
      fc.double({ min: 0, max: 1, maxExcluded: true, noNaN: true }),
      (attempt, baseMs, maxMs, r) => {
        const ceiling = backoffCeiling(attempt, { baseMs, maxMs });
        const delay = fullJitterDelay(attempt, { baseMs, maxMs }, () => r);
        assert.ok(Number.isInteger(delay));
        assert.ok(delay >= 0);
        assert.ok(ceiling === 0 ? delay === 0 : delay < ceiling, `${delay} < ${ceiling}`);
        assert.ok(ceiling <= maxMs);
      },
    ),
  );
});

test('with Math.random, delays spread over the window instead of clustering', () => {
  const delays = Array.from({ length: 2_000 }, () => fullJitterDelay(4, policy));
  assert.ok(delays.every((d) => d >= 0 && d < 800));
  assert.ok(delays.some((d) => d < 200) && delays.some((d) => d >= 600));
});
