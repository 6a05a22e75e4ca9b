import assert from 'node:assert/strict';
import { test } from 'node:test';
import { TenantResolverConfigError } from './errors.ts';
import { RESOLVER_DEFAULTS, resolveOptions } from './resolver-options.ts';

const base = { controlPlaneUrl: 'http://cp.internal:8080/', controlPlaneToken: 's3cret-token' };

test('defaults fill every number left out', () => {
  const options = resolveOptions(base);
  for (const [name, value] of Object.entries(RESOLVER_DEFAULTS)) assert.equal(options[name as keyof typeof RESOLVER_DEFAULTS], value, name);
  assert.equal(options.redisUrl, undefined);
  assert.equal(options.controlPlaneUrl.href, 'http://cp.internal:8080/');
  assert.equal(typeof options.now(), 'number');
});

test('the documented defaults', () => {
  assert.equal(RESOLVER_DEFAULTS.memoryTtlMs, 5_000);
  assert.equal(RESOLVER_DEFAULTS.redisTtlMs, 300_000);
  assert.equal(RESOLVER_DEFAULTS.negativeTtlMs, 2_000);
  assert.equal(RESOLVER_DEFAULTS.staleMaxAgeMs, 600_000);
});

test('a bad number names its option', () => {
  const cases: [Record<string, unknown>, RegExp][] = [
    [{ memoryTtlMs: -1 }, /memoryTtlMs must be a whole number of at least 0/],
    [{ redisTtlMs: 0 }, /redisTtlMs must be a whole number of at least 1/],
    [{ retries: 1.5 }, /retries/],
    [{ requestTimeoutMs: Number.NaN }, /requestTimeoutMs/],
    [{ memoryMaxEntries: 0 }, /memoryMaxEntries/],
  ];
  for (const [extra, expected] of cases) {
    assert.throws(
      () => resolveOptions({ ...base, ...extra }),
      (error) => error instanceof TenantResolverConfigError && expected.test(error.message),
    );
  }
});

test('URLs must have the right scheme', () => {
  assert.throws(() => resolveOptions({ ...base, controlPlaneUrl: 'ftp://cp' }), /controlPlaneUrl must be an http/);
  assert.throws(() => resolveOptions({ ...base, controlPlaneUrl: 'not a url' }), /controlPlaneUrl/);
  assert.throws(() => resolveOptions({ ...base, redisUrl: 'http://redis:6379' }), /redisUrl must be a redis/);
  assert.equal(resolveOptions({ ...base, redisUrl: 'rediss://cache:6380' }).redisUrl, 'rediss://cache:6380');
  assert.equal(resolveOptions({ ...base, controlPlaneUrl: new URL('https://cp/api') }).controlPlaneUrl.pathname, '/api');
});

test('a bad token is refused without being quoted', () => {
  for (const controlPlaneToken of ['', 'abc\r\nX-Evil: 1']) {
    assert.throws(
      () => resolveOptions({ ...base, controlPlaneToken }),
      (error) => error instanceof TenantResolverConfigError && !error.message.includes('Evil') && /controlPlaneToken/.test(error.message),
    );
  }
});
