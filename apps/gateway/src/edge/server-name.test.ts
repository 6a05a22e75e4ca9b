import { test } from 'node:test';
import assert from 'node:assert/strict';
import { bySpecificity, matchSuffix, normalizeServerName, normalizeSuffix } from './server-name.ts';

test('normalizeServerName lower-cases, drops a trailing dot, and treats no name as undefined', () => {
  assert.equal(normalizeServerName('Acme.DB.Example.com.'), 'acme.db.example.com');
  assert.equal(normalizeServerName(''), undefined);
  assert.equal(normalizeServerName('.'), undefined);
  assert.equal(normalizeServerName(false), undefined);
  assert.equal(normalizeServerName(null), undefined);
  assert.equal(normalizeServerName(undefined), undefined);
});

test('suffixes are compared with one leading dot, longest first', () => {
  assert.equal(normalizeSuffix('DB.example.com.'), '.db.example.com');
  assert.equal(normalizeSuffix('.db.example.com'), '.db.example.com');
  const sorted = bySpecificity(['.example.com', 'eu.db.example.com', '.db.example.com']);
  assert.deepEqual(sorted, ['.eu.db.example.com', '.db.example.com', '.example.com']);
  assert.deepEqual(matchSuffix('a.eu.db.example.com', sorted), { suffix: '.eu.db.example.com', prefix: 'a' });
  assert.deepEqual(matchSuffix('a.b.example.com', sorted), { suffix: '.example.com', prefix: 'a.b' });
  assert.equal(matchSuffix('db.example.com', ['.db.example.com']), undefined);
  assert.equal(matchSuffix('xdb.example.com', ['.db.example.com']), undefined);
});
