import assert from 'node:assert/strict';
import { once } from 'node:events';
import { test } from 'node:test';
import { createNotifier } from './observer.ts';

test('missing callbacks are no-ops', () => {
  const notifier = createNotifier();
  notifier.cacheRequest('memory', 'hit', 'acme');
  notifier.invalidation({ tenantId: 'acme', version: 2 });
});

test('callbacks get their arguments, with the observer as this', () => {
  const calls: unknown[] = [];
  const observer = {
    prefix: 'seen',
    cacheRequest(this: { prefix: string }, tier: string, result: string, tenantId: string) {
      calls.push(`${this.prefix} ${tier} ${result} ${tenantId}`);
    },
  };
  createNotifier(observer).cacheRequest('redis', 'miss', 'acme');
  assert.deepEqual(calls, ['seen redis miss acme']);
});

test('a callback that throws becomes a process warning, not a failed resolve', async () => {
  const notifier = createNotifier({
    staleServed() {
      throw new Error('metrics broke');
    },
  });
  const warned = once(process, 'warning');
  notifier.staleServed({ tenantId: 'acme', version: 1, ageSeconds: 1, error: new Error('cp down') });
  const [warning] = (await warned) as [Error & { code?: string }];
  assert.equal(warning.message, 'metrics broke');
});
