// The structure rules of eslint.config.js bite: an import cycle, an import against the gateway's
// layers, a reach past a folder's index.ts, and an import of app.ts each fail lint, and the
// tree as committed passes them.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ESLint } from 'eslint';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const eslint = new ESLint({ cwd: ROOT });

/** Lints `code` as if it were the file at `path` (relative to the repository); the rule ids reported. */
async function ruleIds(path: string, code: string): Promise<string[]> {
  const [result] = await eslint.lintText(code, { filePath: join(ROOT, path) });
  return (result?.messages ?? []).map((message) => `${message.ruleId}: ${message.message}`);
}

test('backend/ may not import session/: the layers run edge -> session -> backend', async () => {
  const messages = await ruleIds(
    'apps/gateway/src/backend/probe.ts',
    "import { Sessions } from '../session/index.ts';\nexport const s = Sessions;\n",
  );
  assert.ok(
    messages.some((m) => m.startsWith('import-x/no-restricted-paths') && m.includes('backend/ may not import session/')),
    messages.join('\n'),
  );
});

test('a folder below may be imported only through its index.ts', async () => {
  const throughIndex = await ruleIds(
    'apps/gateway/src/edge/probe.ts',
    "import { Sessions } from '../session/index.ts';\nexport const s = Sessions;\n",
  );
  assert.deepEqual(throughIndex, []);
  const pastIndex = await ruleIds(
    'apps/gateway/src/edge/probe.ts',
    "import { Sessions } from '../session/session.ts';\nexport const s = Sessions;\n",
  );
  assert.ok(
    pastIndex.some((m) => m.includes('import session/ through its index.ts')),
    pastIndex.join('\n'),
  );
});

test('nothing but the composition roots imports app.ts', async () => {
  const messages = await ruleIds(
    'apps/gateway/src/ops/probe.ts',
    "import { createGateway } from '../app.ts';\nexport const c = createGateway;\n",
  );
  assert.ok(
    messages.some((m) => m.includes('nothing imports app.ts')),
    messages.join('\n'),
  );
});

test('an import cycle fails lint', async (t) => {
  const dir = join(ROOT, 'test/tools/cycle-probe.tmp');
  await mkdir(dir, { recursive: true });
  t.after(() => rm(dir, { recursive: true, force: true }));
  await writeFile(join(dir, 'a.ts'), "import { b } from './b.ts';\nexport const a = () => b;\n");
  await writeFile(join(dir, 'b.ts'), "import { a } from './a.ts';\nexport const b = () => a;\n");
  const [result] = await eslint.lintFiles([join(dir, 'a.ts')]);
  const messages = (result?.messages ?? []).map((m) => m.ruleId);
  assert.ok(messages.includes('import-x/no-cycle'), JSON.stringify(result?.messages));
});

test('the gateway as committed keeps every structure rule', async () => {
  const results = await eslint.lintFiles(['apps/gateway/src/**/*.ts']);
  const broken = results.flatMap((r) =>
    r.messages.filter((m) => m.ruleId?.startsWith('import-x/')).map((m) => `${r.filePath}:${m.line} ${m.message}`),
  );
  assert.deepEqual(broken, []);
});
