// Runs every test of the workspace in one node:test run: the spec reporter for people, and a
// closing `N passed, N failed` line for CI. Extra arguments replace the default file globs.
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { summaryLine, type TestCounts } from './test-summary-reporter.ts';

const root = fileURLToPath(new URL('..', import.meta.url));
const defaults = ['libs/**/*.test.ts', 'apps/**/*.test.ts', 'test/**/*.test.ts', 'bench/**/*.test.ts', 'tools/**/*.test.ts'];
const globs = process.argv.length > 2 ? process.argv.slice(2) : defaults;

const args = [
  '--test',
  `--test-concurrency=${process.env.TEST_CONCURRENCY ?? '2'}`,
  // A hung test must fail, not stall CI: every test file gets this long at most.
  `--test-timeout=${process.env.TEST_TIMEOUT_MS ?? '300000'}`,
  // A test file whose last test ended must not keep CI waiting on a handle it leaked.
  '--test-force-exit',
  '--test-reporter=spec',
  '--test-reporter-destination=stdout',
  '--test-reporter=./tools/test-summary-reporter.ts',
  '--test-reporter-destination=stdout',
  ...globs,
];

// The source condition must reach every child process (test files, servers they spawn).
const nodeOptions = [process.env.NODE_OPTIONS, '--conditions=@tenantgate/source'].filter(Boolean).join(' ');
const summaryFile = join(mkdtempSync(join(tmpdir(), 'tg-tests-')), 'summary.json');
const child = spawn(process.execPath, args, {
  cwd: root,
  stdio: 'inherit',
  env: { ...process.env, NODE_OPTIONS: nodeOptions, TG_TEST_SUMMARY_FILE: summaryFile },
});
child.on('exit', (code, signal) => {
  const counts = readCounts();
  process.stdout.write(summaryLine(counts));
  rmSync(dirname(summaryFile), { recursive: true, force: true });
  process.exitCode = code ?? (signal ? 1 : 0);
  if (counts.failed > 0 && process.exitCode === 0) process.exitCode = 1;
});

function readCounts(): TestCounts {
  try {
    return JSON.parse(readFileSync(summaryFile, 'utf8')) as TestCounts;
  } catch {
    return { passed: 0, failed: 0, skipped: 0 };
  }
}
