import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Access, TokenTable } from './tokens.ts';

test("a token grants its list's access; unknown tokens nothing", () => {
  const table = new TokenTable(['admin-token-0123456789'], ['gateway-token-0123456789']);
  assert.equal(table.lookup('admin-token-0123456789'), Access.Admin);
  assert.equal(table.lookup('gateway-token-0123456789'), Access.Gateway);
  assert.equal(table.lookup('admin-token-012345678'), undefined);
  assert.equal(table.lookup(''), undefined);
});

test('a token in both lists is an admin token', () => {
  assert.equal(new TokenTable(['same-token-0123456789'], ['same-token-0123456789']).lookup('same-token-0123456789'), Access.Admin);
});
