// Token lists of both apps: which tokens a list knows, and which Bearer headers carry one.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { bearerToken, KnownTokens } from './tokens.ts';

test('KnownTokens knows each of its tokens and nothing else, not a prefix or an extension of one', () => {
  const tokens = new KnownTokens(['first-token-0123456789', 'second-token-0123456789']);
  assert.equal(tokens.size, 2);
  assert.ok(tokens.has('first-token-0123456789'));
  assert.ok(tokens.has('second-token-0123456789'));
  for (const other of [undefined, '', 'first-token-012345678', 'first-token-0123456789x', 'FIRST-TOKEN-0123456789'])
    assert.ok(!tokens.has(other), String(other));
  assert.ok(!new KnownTokens([]).has('first-token-0123456789'));
});

test('bearerToken takes the RFC 6750 token of a Bearer header', () => {
  assert.equal(bearerToken('Bearer abc.DEF-123_~+/='), 'abc.DEF-123_~+/=');
  assert.equal(bearerToken('bearer  abc'), 'abc');
  for (const bad of [undefined, '', 'Basic YWxhZGRpbjpvcGVuc2VzYW1l', 'Bearer', 'Bearerabc', 'Bearer a b', 'Bearer a"b'])
    assert.equal(bearerToken(bad), undefined, String(bad));
});
