import { test } from 'node:test';
import assert from 'node:assert/strict';
import { PendingConnections } from './pending.ts';

test('the total and each address have their own cap; a released slot gives both back once', () => {
  const pending = new PendingConnections(3, 2);
  const a1 = pending.enter()!;
  const a2 = pending.enter()!;
  assert.ok(a1.bind('10.0.0.1') && a2.bind('10.0.0.1'));
  const a3 = pending.enter()!;
  assert.equal(a3.bind('10.0.0.1'), false, "the address's share is taken");
  assert.ok(a3.bind('10.0.0.2'), 'a refused bind counted nothing; another address may bind it');
  assert.equal(pending.enter(), undefined, 'the total is taken');
  a1.release();
  a1.release();
  assert.equal(pending.size, 2);
  assert.equal(pending.fromAddress('10.0.0.1'), 1);
  const a4 = pending.enter()!;
  assert.ok(a4.bind('10.0.0.1'));
  for (const slot of [a2, a3, a4]) slot.release();
  assert.equal(pending.size, 0);
  assert.equal(pending.fromAddress('10.0.0.1'), 0);
});
