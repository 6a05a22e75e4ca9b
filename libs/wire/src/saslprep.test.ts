import assert from 'node:assert/strict';
import { test } from 'node:test';
import { saslprep } from './saslprep.ts';
import * as tables from './saslprep-tables.ts';
import { POSTGRES_SECRETS } from './testing/postgres-secrets.ts';

test('saslprep maps, normalizes, and falls back to the raw password as PostgreSQL does', () => {
  const results = POSTGRES_SECRETS.map(([password]) => saslprep(password));
  const raw = (i: number) => POSTGRES_SECRETS[i][0];
  const expected = ['pencil', 'IX', 'ix', 'a ix', raw(4), raw(5), raw(6), '\u05D0\u05D0', raw(8), raw(9), 'a\tb'];
  assert.deepEqual(results, expected);
  assert.equal(saslprep('\uD800x\u2178'), '\uD800x\u2178', 'not well-formed UTF-16: raw');
  assert.equal(saslprep('\u05D0\u2178\u05D0'), '\u05D0\u2178\u05D0', 'left-to-right inside right-to-left: raw');
  assert.equal(saslprep('\u05D0\u0661\uFB21'), '\u05D0\u0661\u05D0', 'neutral digit inside right-to-left: mapped');
  assert.equal(saslprep('\uFB211'), '\uFB211', 'right-to-left must also end the string: raw');
  assert.equal(saslprep('1\uFB21'), '1\uFB21', 'right-to-left must also start the string: raw');
});

test('the generated tables are sorted, disjoint, non-adjacent ranges, as the binary search needs', () => {
  for (const [name, ranges] of Object.entries(tables)) {
    assert.ok(ranges.length > 0 && ranges.length % 2 === 0, name);
    for (let i = 0; i < ranges.length; i += 2) {
      assert.ok(ranges[i] <= ranges[i + 1], `${name}: range ${i / 2} ends before it starts`);
      if (i > 0) assert.ok(ranges[i] > ranges[i - 1] + 1, `${name}: range ${i / 2} overlaps or touches the one before`);
    }
  }
});
