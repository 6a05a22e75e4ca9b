import assert from 'node:assert/strict';
import { test } from 'node:test';
import { checkTenantRoute } from './route-validation.ts';
import { TEST_SCRAM_SECRET, testRoute } from './testing/route.ts';

function problem(value: unknown, id = 'acme'): string {
  const checked = checkTenantRoute(value, id);
  assert.ok('problem' in checked, 'expected a problem');
  return checked.problem;
}

test('a complete route passes and comes back deep-frozen', () => {
  const checked = checkTenantRoute(testRoute('acme'), 'acme');
  assert.ok('route' in checked);
  assert.ok(Object.isFrozen(checked.route));
  assert.ok(Object.isFrozen(checked.route.backend));
  assert.ok(Object.isFrozen(checked.route.roles[0]));
  assert.throws(() => {
    (checked.route.backend as { port: number }).port = 1;
  }, TypeError);
});

test('fields the gateway does not know are allowed (a newer control plane may add some)', () => {
  const route = { ...testRoute('acme'), region: 'eu-1', backend: { ...testRoute('acme').backend, pool: 'x' } };
  assert.ok('route' in checkTenantRoute(route, 'acme'));
});

test('a route without replication (an older control plane) allows none; an unknown value is refused', () => {
  const { replication: _, ...older } = testRoute('acme', { replication: 'logical' });
  const checked = checkTenantRoute(older, 'acme');
  assert.ok('route' in checked);
  assert.equal(checked.route.replication, 'none');
  assert.match(problem({ ...testRoute('acme'), replication: 'everything' }), /^\/replication must be equal to one of the allowed values/);
});

test('a route for another tenant is refused', () => {
  assert.match(problem(testRoute('other')), /\/id is "other", not the tenant asked for/);
});

test('the version must be a positive safe integer', () => {
  for (const version of [0, -1, 1.5, '1', null, 2 ** 53]) {
    assert.match(problem({ ...testRoute('acme'), version }), /\/version/, String(version));
  }
});

test('each field the gateway reads is checked', () => {
  const route = testRoute('acme');
  const cases: [unknown, RegExp][] = [
    [null, /must be object/],
    [[], /must be object/],
    ['acme', /must be object/],
    [{ ...route, backend: undefined }, /\/backend is required/],
    [{ ...route, backend: { host: 'db', port: 70_000 } }, /\/backend\/port/],
    [{ ...route, backend: { port: 5432 } }, /\/backend\/host is required/],
    [{ ...route, status: 'paused' }, /\/status/],
    [{ ...route, authMode: 'trust' }, /\/authMode/],
    [{ ...route, roles: [{ name: 'app' }] }, /\/roles\/0\/scramSecret is required/],
    [{ ...route, roles: [{ name: 'app', scramSecret: 'md5abc' }] }, /\/roles\/0\/scramSecret/],
    [{ ...route, allowedCidrs: ['10.0.0.0/8', 'everywhere'] }, /\/allowedCidrs\/1 is not a CIDR block/],
    [{ ...route, limits: { maxConnections: 10 } }, /\/limits\/connectsPerSecond is required/],
    [{ ...route, createdAt: undefined }, /\/createdAt is required/],
    [{ ...route, id: 'Not An Id' }, /\/id/],
  ];
  for (const [value, expected] of cases) assert.match(problem(value), expected, JSON.stringify(value));
});

test('a problem never quotes a secret', () => {
  const secret = TEST_SCRAM_SECRET.replace('SCRAM-SHA-256', 'SCRAM-SHA-1');
  const message = problem({ ...testRoute('acme'), roles: [{ name: 'app', scramSecret: secret }] });
  assert.ok(!message.includes(secret.split('$')[1] ?? secret), message);
});
