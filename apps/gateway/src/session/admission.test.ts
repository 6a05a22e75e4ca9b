import { test } from 'node:test';
import assert from 'node:assert/strict';
import { validateTenantInput, type Tenant } from '@tenantgate/tenancy';
import { Admission } from './admission.ts';
import { Refusal } from '../errors.ts';

function tenant(overrides: Record<string, unknown> = {}): Tenant {
  return { ...validateTenantInput({ id: 'acme', backend: { host: 'db' }, ...overrides }), roles: [] };
}

function refusalOf(fn: () => unknown): Refusal {
  try {
    fn();
  } catch (error) {
    assert.ok(error instanceof Refusal, String(error));
    return error;
  }
  assert.fail('expected a refusal');
}

test('an active tenant within its limits is admitted, and the ticket frees the slot once', () => {
  const admission = new Admission();
  const t = tenant({ limits: { maxConnections: 1, connectsPerSecond: 100 } });
  const ticket = admission.admit(t);
  assert.equal(admission.activeSessions('acme'), 1);
  assert.equal(refusalOf(() => admission.admit(t)).sqlState, '53300');
  ticket.release();
  ticket.release();
  assert.equal(admission.activeSessions('acme'), 0);
  admission.admit(t);
});

test('suspended and maintenance tenants are refused with their SQLSTATEs', () => {
  const admission = new Admission();
  const suspended = refusalOf(() => admission.check(tenant({ status: 'suspended' }), '10.0.0.1'));
  assert.equal(suspended.sqlState, '08004');
  assert.match(suspended.message, /suspended/);
  const maintenance = refusalOf(() => admission.check(tenant({ status: 'maintenance' }), '10.0.0.1'));
  assert.equal(maintenance.sqlState, '57P03');
});

test('the allow-list is checked, IPv4-mapped addresses included, and follows a changed list', () => {
  const admission = new Admission();
  const narrow = tenant({ allowedCidrs: ['192.0.2.0/24'] });
  admission.check(narrow, '::ffff:192.0.2.7');
  const refused = refusalOf(() => admission.check(narrow, '198.51.100.1'));
  assert.equal(refused.sqlState, '28000');
  assert.ok(!refused.message.includes('198.51.100.1'), 'the message does not echo addresses');
  admission.check(tenant({ allowedCidrs: ['198.51.100.0/24'] }), '198.51.100.1');
});

test('the connect rate is a token bucket of connectsPerSecond, refilled over time', () => {
  let now = 0;
  const admission = new Admission({ now: () => now });
  const t = tenant({ limits: { maxConnections: 100, connectsPerSecond: 2 } });
  admission.admit(t).release();
  admission.admit(t).release();
  const refused = refusalOf(() => admission.admit(t));
  assert.equal(refused.sqlState, '53300');
  assert.match(refused.message, /per second/);
  now += 500;
  admission.admit(t).release();
  assert.equal(refusalOf(() => admission.admit(t)).sqlState, '53300');
});

test('closing sessions does not reset the connect rate', () => {
  const admission = new Admission({ now: () => 0 });
  const t = tenant({ limits: { maxConnections: 100, connectsPerSecond: 1 } });
  admission.admit(t).release();
  assert.equal(refusalOf(() => admission.admit(t)).sqlState, '53300');
});

test('a limit of zero connections refuses every client', () => {
  const admission = new Admission();
  assert.equal(refusalOf(() => admission.admit(tenant({ limits: { maxConnections: 0 } }))).sqlState, '53300');
});

test("an unauthenticated client cannot spend the tenant's capacity: check() takes no slot and no token", () => {
  const admission = new Admission({ now: () => 0 });
  const t = tenant({ limits: { maxConnections: 1, connectsPerSecond: 1 } });
  for (let i = 0; i < 100; i++) admission.check(t, '10.0.0.1');
  assert.equal(admission.activeSessions('acme'), 0);
  admission.admit(t);
});

test('early backend opens are bounded per tenant and come back on release', () => {
  const admission = new Admission({ earlyOpensPerTenant: 2 });
  const acme = tenant();
  const globex = tenant({ id: 'globex' });
  const first = admission.earlyOpen(acme);
  const second = admission.earlyOpen(acme);
  assert.ok(first && second);
  assert.equal(admission.earlyOpen(acme), undefined, 'the budget is spent');
  assert.ok(admission.earlyOpen(globex), "another tenant's budget is its own");
  first.release();
  first.release();
  assert.ok(admission.earlyOpen(acme), 'a released pass is given back once');
  assert.equal(admission.earlyOpen(acme), undefined);
});
