import { test } from 'node:test';
import assert from 'node:assert/strict';
import { validateTenantInput, type Tenant } from '@tenantgate/tenancy';
import { Admission } from './admission.ts';
import { Refusal } from '../errors.ts';
import type { FleetDecision, FleetLimits } from '../limits/index.ts';

function tenant(overrides: Record<string, unknown> = {}): Tenant {
  return { ...validateTenantInput({ id: 'acme', backend: { host: 'db' }, ...overrides }), roles: [] };
}

async function refusalOf(fn: () => unknown): Promise<Refusal> {
  try {
    await fn();
  } catch (error) {
    assert.ok(error instanceof Refusal, String(error));
    return error;
  }
  assert.fail('expected a refusal');
}

test('an active tenant within its limits is admitted, and the ticket frees the slot once', async () => {
  const admission = new Admission();
  const t = tenant({ limits: { maxConnections: 1, connectsPerSecond: 100 } });
  const ticket = await admission.admit(t);
  assert.equal(admission.activeSessions('acme'), 1);
  assert.equal((await refusalOf(() => admission.admit(t))).sqlState, '53300');
  ticket.release();
  ticket.release();
  assert.equal(admission.activeSessions('acme'), 0);
  await admission.admit(t);
});

test('suspended and maintenance tenants are refused with their SQLSTATEs', async () => {
  const admission = new Admission();
  const suspended = await refusalOf(() => admission.check(tenant({ status: 'suspended' }), '10.0.0.1'));
  assert.equal(suspended.sqlState, '08004');
  assert.match(suspended.message, /suspended/);
  const maintenance = await refusalOf(() => admission.check(tenant({ status: 'maintenance' }), '10.0.0.1'));
  assert.equal(maintenance.sqlState, '57P03');
});

test('the allow-list is checked, IPv4-mapped addresses included, and follows a changed list', async () => {
  const admission = new Admission();
  const narrow = tenant({ allowedCidrs: ['192.0.2.0/24'] });
  admission.check(narrow, '::ffff:192.0.2.7');
  const refused = await refusalOf(() => admission.check(narrow, '198.51.100.1'));
  assert.equal(refused.sqlState, '28000');
  assert.ok(!refused.message.includes('198.51.100.1'), 'the message does not echo addresses');
  admission.check(tenant({ allowedCidrs: ['198.51.100.0/24'] }), '198.51.100.1');
});

test('the connect rate is a token bucket of connectsPerSecond, refilled over time', async () => {
  let now = 0;
  const admission = new Admission({ now: () => now });
  const t = tenant({ limits: { maxConnections: 100, connectsPerSecond: 2 } });
  (await admission.admit(t)).release();
  (await admission.admit(t)).release();
  const refused = await refusalOf(() => admission.admit(t));
  assert.equal(refused.sqlState, '53300');
  assert.match(refused.message, /per second/);
  now += 500;
  (await admission.admit(t)).release();
  assert.equal((await refusalOf(() => admission.admit(t))).sqlState, '53300');
});

test('closing sessions does not reset the connect rate', async () => {
  const admission = new Admission({ now: () => 0 });
  const t = tenant({ limits: { maxConnections: 100, connectsPerSecond: 1 } });
  (await admission.admit(t)).release();
  assert.equal((await refusalOf(() => admission.admit(t))).sqlState, '53300');
});

test('a limit of zero connections refuses every client', async () => {
  const admission = new Admission();
  assert.equal((await refusalOf(() => admission.admit(tenant({ limits: { maxConnections: 0 } })))).sqlState, '53300');
});

test("an unauthenticated client cannot spend the tenant's capacity: check() takes no slot and no token", async () => {
  const admission = new Admission({ now: () => 0 });
  const t = tenant({ limits: { maxConnections: 1, connectsPerSecond: 1 } });
  for (let i = 0; i < 100; i++) admission.check(t, '10.0.0.1');
  assert.equal(admission.activeSessions('acme'), 0);
  await admission.admit(t);
});

test('early backend opens are bounded per tenant and come back on release', async () => {
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

/** A fleet that answers what the test says, and counts the leases it gave and got back. */
function scriptedFleet(answer: () => FleetDecision['kind']): FleetLimits & { held: number } {
  const fleet = {
    held: 0,
    acquire: async (): Promise<FleetDecision> => {
      const kind = answer();
      if (kind === 'refused') return { kind, limit: 'cap' };
      fleet.held++;
      let released = false;
      const lease = {
        release: () => {
          if (released) return;
          released = true;
          fleet.held--;
        },
      };
      return { kind, lease };
    },
    close: async () => {},
  };
  return fleet;
}

test("the fleet's refusal refuses, and gives back this process's slot", async () => {
  const fleet = scriptedFleet(() => 'refused');
  const admission = new Admission({ fleet });
  const t = tenant({ limits: { maxConnections: 5, connectsPerSecond: 100 } });
  const refused = await refusalOf(() => admission.admit(t));
  assert.equal(refused.sqlState, '53300');
  assert.match(refused.message, /too many connections/);
  assert.equal(admission.activeSessions('acme'), 0);
});

test('admitted by the fleet, or decided here while the fleet cannot be asked: one release frees both', async () => {
  let kind: FleetDecision['kind'] = 'admitted';
  const fleet = scriptedFleet(() => kind);
  const admission = new Admission({ fleet });
  const t = tenant({ limits: { maxConnections: 2, connectsPerSecond: 100 } });
  const first = await admission.admit(t);
  kind = 'unavailable';
  const second = await admission.admit(t);
  assert.equal(fleet.held, 2);
  assert.equal((await refusalOf(() => admission.admit(t))).sqlState, '53300', "without the fleet, this process's cap holds");
  first.release();
  second.release();
  second.release();
  assert.equal(fleet.held, 0);
  assert.equal(admission.activeSessions('acme'), 0);
});

test('counters are kept for tenants in use and forgotten a second after their last session, whatever the number of tenants', async () => {
  let now = 0;
  const admission = new Admission({ now: () => now });
  const held = [];
  for (let i = 0; i < 20_000; i++) held.push(await admission.admit(tenant({ id: `busy-${i}`, limits: { connectsPerSecond: 1 } })));
  for (let i = 0; i < 100; i++) admission.check(tenant({ id: `looked-at-${i}` }), '10.0.0.1');
  assert.equal(admission.trackedTenants, 20_100);
  now += 1_000;
  admission.check(tenant({ id: 'newcomer' }), '10.0.0.1');
  assert.equal(admission.trackedTenants, 20_001, 'the idle ones went; every tenant with a session stays');
  const busy0 = tenant({ id: 'busy-0', limits: { connectsPerSecond: 1 } });
  held[0]!.release();
  (await admission.admit(busy0)).release();
  assert.equal((await refusalOf(() => admission.admit(busy0))).sqlState, '53300', 'its spent bucket is remembered while it matters');
  now += 1_000;
  admission.check(tenant({ id: 'another' }), '10.0.0.1');
  assert.equal(admission.trackedTenants, 20_000, 'busy-0 and newcomer forgotten: 19,999 busy tenants and another');
  await admission.admit(tenant({ id: 'busy-0', limits: { connectsPerSecond: 1 } }));
});
