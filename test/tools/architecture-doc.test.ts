// docs/architecture.md stays true to the code: every path it links exists, every function or
// class named right after a link is declared in that file, every gateway source file cites the
// step or section it belongs to, and every citation in the code names a step or section that is there.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const DOC = join(ROOT, 'docs/architecture.md');
const doc = readFileSync(DOC, 'utf8');

/** `[label](path)` and the backticked names right after it: `[x.ts](../x.ts) \`Class\` \`method\``. */
const LINK = /\[[^\]]+\]\(([^)#\s]+)\)((?:\s+`[A-Za-z_$][\w$]*`)*)/g;
/** `docs/architecture.md, step 8` or `docs/architecture.md, "Cancel routing"`. */
const CITATION = /docs\/architecture\.md,\s+(?:step (\d+)|"([^"]+)")/g;

const steps = new Set([...doc.matchAll(/^(\d+)\. \*\*/gm)].map((m) => Number(m[1])));
const sections = new Set([...doc.matchAll(/^#{2,3} (.+)$/gm)].map((m) => m[1]!.trim()));

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const path = join(dir, entry.name);
    if (entry.isDirectory())
      return entry.name === 'node_modules' || entry.name.startsWith('.') || entry.name === 'out-tsc' ? [] : sourceFiles(path);
    return entry.name.endsWith('.ts') && !entry.name.endsWith('.d.ts') ? [path] : [];
  });
}

function declares(source: string, name: string): boolean {
  const declaration = new RegExp(
    `(?:function|class|interface|type|const|let)\\s+${name}\\b|^\\s*(?:async\\s+)?(?:get\\s+)?${name}\\s*[(<]`,
    'm',
  );
  return declaration.test(source);
}

test('the map names steps 1 to 13 and its sections', () => {
  assert.deepEqual(
    [...steps],
    Array.from({ length: steps.size }, (_, i) => i + 1),
  );
  for (const section of [
    'Parts',
    'Inside the gateway',
    'One connection',
    'Cancel routing',
    'Drain and shutdown',
    'Redis',
    'Control plane',
  ]) {
    assert.ok(sections.has(section), section);
  }
});

test('every path linked from docs/architecture.md exists, and every name after a link is declared there', () => {
  const missing: string[] = [];
  let links = 0;
  for (const [, target, names] of doc.matchAll(LINK)) {
    links++;
    const path = join(dirname(DOC), target!);
    if (!existsSync(path)) {
      missing.push(`${target}: no such path`);
      continue;
    }
    for (const [, name] of names!.matchAll(/`([^`]+)`/g)) {
      if (!declares(readFileSync(path, 'utf8'), name!)) missing.push(`${target}: declares no ${name}`);
    }
  }
  assert.ok(links > 50, `only ${links} links found: the link pattern no longer matches the document`);
  assert.deepEqual(missing, []);
});

test('every citation in the code names a step or section of docs/architecture.md', () => {
  const broken: string[] = [];
  for (const dir of ['apps', 'libs', 'test', 'tools', 'bench']) {
    for (const file of sourceFiles(join(ROOT, dir))) {
      for (const [citation, step, section] of readFileSync(file, 'utf8').matchAll(CITATION)) {
        const ok = step === undefined ? sections.has(section!) : steps.has(Number(step));
        if (!ok) broken.push(`${relative(ROOT, file)}: ${citation}`);
      }
    }
  }
  assert.deepEqual(broken, []);
});

test('every gateway source file cites its step or section at the top', () => {
  const gateway = join(ROOT, 'apps/gateway/src');
  const uncited = sourceFiles(gateway)
    .filter((file) => !file.endsWith('.test.ts') && !file.endsWith('/index.ts') && !relative(gateway, file).startsWith('testing/'))
    .filter((file) => {
      const header = readFileSync(file, 'utf8')
        .split('\n')
        .filter((line) => line.startsWith('//'))
        .slice(0, 12)
        .join('\n');
      return !/docs\/architecture\.md,/.test(header);
    })
    .map((file) => relative(ROOT, file));
  assert.deepEqual(uncited, []);
});

test('the old citations of a design file outside the repository are gone', () => {
  const stale = ['apps', 'libs', 'test', 'tools', 'bench'].flatMap((dir) =>
    sourceFiles(join(ROOT, dir))
      .filter((file) => /DESIGN\.md/.test(readFileSync(file, 'utf8')))
      .map((file) => relative(ROOT, file)),
  );
  assert.deepEqual(stale, []);
});
