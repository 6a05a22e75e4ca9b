import { test } from 'node:test';
import assert from 'node:assert/strict';
import { BreakerState, CircuitBreaker } from './circuit-breaker.ts';

test('the breaker opens after the failures in a row, lets one probe through once open long enough, and closes on its success', () => {
  let now = 0;
  const breaker = new CircuitBreaker({ failures: 3, openMs: 1000, now: () => now });
  breaker.failure();
  breaker.failure();
  breaker.success();
  breaker.failure();
  breaker.failure();
  assert.equal(breaker.state, BreakerState.Closed, 'a success in between resets the count');
  assert.ok(breaker.allow());
  breaker.failure();
  assert.equal(breaker.state, BreakerState.Open);
  assert.equal(breaker.allow(), false);
  now = 999;
  assert.equal(breaker.allow(), false);
  now = 1000;
  assert.equal(breaker.state, BreakerState.HalfOpen);
  assert.ok(breaker.allow(), 'one probe');
  assert.equal(breaker.allow(), false, 'and only one while it is out');
  breaker.success();
  assert.equal(breaker.state, BreakerState.Closed);
  assert.ok(breaker.allow());
});

test('a failed probe opens the breaker again for the whole open time', () => {
  let now = 0;
  const breaker = new CircuitBreaker({ failures: 1, openMs: 500, now: () => now });
  breaker.failure();
  now = 500;
  assert.ok(breaker.allow());
  breaker.failure();
  assert.equal(breaker.state, BreakerState.Open);
  now = 999;
  assert.equal(breaker.allow(), false);
  now = 1000;
  assert.ok(breaker.allow());
});
