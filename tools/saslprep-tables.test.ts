// The committed libs/wire/src/saslprep-tables.ts must be exactly what tools/saslprep-tables.py
// writes, so nobody edits the tables by hand or forgets to regenerate them. Needs python3 (CI
// installs it); skipped, and says so, only where it is missing.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const run = promisify(execFile);
const root = fileURLToPath(new URL('..', import.meta.url));
const committed = join(root, 'libs', 'wire', 'src', 'saslprep-tables.ts');
const python = await run('python3', ['--version']).catch(() => undefined);
const skip = python === undefined && 'python3 is not installed: cannot check the generated SASLprep tables';

test('libs/wire/src/saslprep-tables.ts is what tools/saslprep-tables.py writes', { skip }, async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'tg-saslprep-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const generated = join(dir, 'saslprep-tables.ts');
  await run('python3', [join(root, 'tools', 'saslprep-tables.py'), generated]);
  // latin1 gives one character per byte: a byte-for-byte comparison that still shows a diff.
  const [expected, actual] = await Promise.all([readFile(generated, 'latin1'), readFile(committed, 'latin1')]);
  assert.equal(actual, expected, 'the committed tables differ: run `python3 tools/saslprep-tables.py`');
});
