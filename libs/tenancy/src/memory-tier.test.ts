import assert from 'node:assert/strict';
import { test } from 'node:test';
import { MemoryTier, type MemoryTierOptions } from './memory-tier.ts';
import { foundAnswer, UNKNOWN_TENANT } from './route-answer.ts';
import { testRoute } from './testing/route.ts';

function tier(options: Partial<MemoryTierOptions> = {}) {
  const clock = { now: 1_000 };
  const memory = new MemoryTier({
    ttlMs: 5_000,
    negativeTtlMs: 2_000,
    staleMaxAgeMs: 600_000,
    maxEntries: 100,
    maxBytes: 1024 * 1024,
    now: () => clock.now,
    ...options,
  });
  return { memory, clock };
}

test('a route is fresh for the TTL, then only a stale fallback until the stale limit', () => {
  const { memory, clock } = tier();
  const answer = foundAnswer(testRoute('acme', { version: 3 }));
  memory.set('acme', answer);
  assert.equal(memory.fresh('acme'), answer);
  clock.now += 4_999;
  assert.equal(memory.fresh('acme'), answer);
  clock.now += 1;
  assert.equal(memory.fresh('acme'), undefined);
  assert.deepEqual(memory.stale('acme'), { route: answer.kind === 'found' ? answer.route : undefined, ageMs: 5_000 });
  clock.now += 600_000 - 5_000 - 1;
  assert.equal(memory.stale('acme')?.ageMs, 599_999);
  clock.now += 1;
  assert.equal(memory.stale('acme'), undefined);
  assert.equal(memory.fresh('acme'), undefined);
  assert.equal(memory.size, 0);
});

test('"unknown" is fresh for the negative TTL and never stale', () => {
  const { memory, clock } = tier();
  memory.set('ghost', UNKNOWN_TENANT);
  assert.equal(memory.fresh('ghost'), UNKNOWN_TENANT);
  assert.equal(memory.stale('ghost'), undefined);
  clock.now += 2_000;
  assert.equal(memory.fresh('ghost'), undefined);
  assert.equal(memory.size, 0);
});

test('"unknown" replaces a route, stale fallback included (the tenant was deleted)', () => {
  const { memory, clock } = tier();
  memory.set('acme', foundAnswer(testRoute('acme')));
  clock.now += 10_000;
  memory.set('acme', UNKNOWN_TENANT);
  assert.equal(memory.stale('acme'), undefined);
});

test('delete forgets the tenant entirely, stale fallback included', () => {
  const { memory } = tier();
  memory.set('acme', foundAnswer(testRoute('acme')));
  memory.delete('acme');
  assert.equal(memory.fresh('acme'), undefined);
  assert.equal(memory.stale('acme'), undefined);
});

test('expireAll makes routes stale fallbacks only and drops unknowns', () => {
  const { memory } = tier();
  const route = testRoute('acme');
  memory.set('acme', foundAnswer(route));
  memory.set('ghost', UNKNOWN_TENANT);
  memory.expireAll();
  assert.equal(memory.fresh('acme'), undefined);
  assert.equal(memory.stale('acme')?.route, route);
  assert.equal(memory.fresh('ghost'), undefined);
  assert.equal(memory.size, 1);
});

test('a TTL of 0 caches nothing fresh but still keeps the stale fallback', () => {
  const { memory } = tier({ ttlMs: 0 });
  memory.set('acme', foundAnswer(testRoute('acme')));
  assert.equal(memory.fresh('acme'), undefined);
  assert.ok(memory.stale('acme'));
});

test('a stale limit shorter than the TTL keeps the route as long as it is fresh, and no longer', () => {
  const { memory, clock } = tier({ staleMaxAgeMs: 0 });
  memory.set('acme', foundAnswer(testRoute('acme')));
  clock.now += 4_000;
  assert.ok(memory.stale('acme'));
  clock.now += 1_000;
  assert.equal(memory.stale('acme'), undefined);
});

test('the least recently used tenant goes first when the tier is full', () => {
  const { memory } = tier({ maxEntries: 2 });
  memory.set('a', foundAnswer(testRoute('a')));
  memory.set('b', foundAnswer(testRoute('b')));
  assert.ok(memory.fresh('a'));
  memory.set('c', foundAnswer(testRoute('c')));
  assert.ok(memory.fresh('a'));
  assert.equal(memory.fresh('b'), undefined);
  assert.ok(memory.fresh('c'));
});

test('bytes bound the tier as entries do: heavy routes push out the least recently used, one heavier than the bound is not kept', () => {
  const { memory } = tier({ maxEntries: 1_000, maxBytes: 50_000 });
  const heavy = (id: string) =>
    foundAnswer(testRoute(id, { roles: Array.from({ length: 50 }, (_, i) => ({ name: `role-${i}`, scramSecret: 'x'.repeat(150) })) }));
  for (let i = 0; i < 20; i++) memory.set(`heavy-${i}`, heavy(`heavy-${i}`));
  assert.ok(memory.bytes <= 50_000, `${memory.bytes} bytes`);
  assert.ok(memory.size < 20, `${memory.size} entries: the byte bound, not the count, limited them`);
  assert.equal(memory.fresh('heavy-0'), undefined, 'the least recently used went first');
  assert.ok(memory.fresh('heavy-19') !== undefined);
  memory.set(
    'huge',
    foundAnswer(testRoute('huge', { roles: Array.from({ length: 1_000 }, (_, i) => ({ name: `r${i}`, scramSecret: 'y'.repeat(100) })) })),
  );
  assert.equal(memory.fresh('huge'), undefined, 'a route over the whole bound is not kept');
  assert.ok(memory.fresh('heavy-19') !== undefined, 'and pushes nothing out');
});
