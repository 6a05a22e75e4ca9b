// An older Node gets one line naming the version needed, from every npm script, before any .ts
// file loads (instead of ERR_UNKNOWN_FILE_EXTENSION). The old Node is a stub `node` first on PATH:
// a shell script that runs this Node, made to report an older version.
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { chmod, readFile, writeFile } from 'node:fs/promises';
import { delimiter, join } from 'node:path';
import { createTempDir, removeTempDir } from '@tenantgate/testing';
import { ROOT, runToEnd } from './run.ts';

/** A directory whose `node` reports `version`; its PATH puts that first. */
async function oldNode(t: TestContext, version: string): Promise<{ home: string; path: string }> {
  const dir = createTempDir('old-node');
  t.after(() => removeTempDir(dir));
  const pretend = join(dir, 'pretend.cjs');
  await writeFile(
    pretend,
    `Object.defineProperty(process, 'version', { value: 'v${version}' });\n` +
      `Object.defineProperty(process.versions, 'node', { value: '${version}' });\n`,
  );
  const stub = join(dir, 'node');
  await writeFile(stub, `#!/bin/sh\nexec '${process.execPath}' --require '${pretend}' "$@"\n`);
  await chmod(stub, 0o755);
  return { home: dir, path: [dir, process.env.PATH ?? ''].join(delimiter) };
}

test('the check alone: one line naming the version needed and the one found', async (t) => {
  const { path } = await oldNode(t, '20.11.0');
  const result = await runToEnd('sh', ['-c', 'node tools/check-node.cjs'], { PATH: path });
  assert.equal(result.code, 1);
  assert.equal(result.stderr, 'tenantgate needs Node 22.18 or newer (found v20.11.0)\n');
});

test('the check lets Node 22.18 and this Node through, saying nothing', async (t) => {
  const { path } = await oldNode(t, '22.18.0');
  for (const env of [{ PATH: path }, { PATH: process.env.PATH ?? '' }]) {
    const result = await runToEnd('sh', ['-c', 'node tools/check-node.cjs'], env);
    assert.deepEqual(result, { code: 0, stdout: '', stderr: '' });
  }
});

test('every npm script of the repository runs the check first', async (t) => {
  const { home, path } = await oldNode(t, '22.17.1');
  const { scripts } = JSON.parse(await readFile(join(ROOT, 'package.json'), 'utf8')) as { scripts: Record<string, string> };
  for (const script of Object.keys(scripts)) {
    const result = await runToEnd('sh', ['-c', `npm run --silent ${script}`], { PATH: path, HOME: home });
    assert.notEqual(result.code, 0, script);
    assert.equal(result.stderr, 'tenantgate needs Node 22.18 or newer (found v22.17.1)\n', script);
    assert.doesNotMatch(result.stdout + result.stderr, /ERR_UNKNOWN_FILE_EXTENSION/, script);
  }
});
