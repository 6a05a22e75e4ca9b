import { test } from 'node:test';
import assert from 'node:assert/strict';
import { decodeCursor, encodeCursor } from './cursor.ts';

test('a cursor round-trips the last id of a page', () => {
  for (const id of ['a', 'acme', 'tenant-0042', 'x'.repeat(63)]) assert.equal(decodeCursor(encodeCursor(id)), id);
});

test('anything else is not a cursor', () => {
  for (const bad of ['', 'zzz', 'a+b', encodeCursor('UPPER'), Buffer.from('acme').toString('base64url'), encodeCursor('x'.repeat(64))]) {
    assert.equal(decodeCursor(bad), undefined, bad);
  }
});
