// Runs every test of the workspace in one node:test run: the spec reporter for people, and a
// closing `N passed, N failed` line for CI. Extra arguments replace the default file globs.
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const defaults = ['libs/**/*.test.ts', 'apps/**/*.test.ts', 'test/**/*.test.ts', 'bench/**/*.test.ts'];
const globs = process.argv.length > 2 ? process.argv.slice(2) : defaults;

const args = [
  '--test',
  `--test-concurrency=${process.env.TEST_CONCURRENCY ?? '2'}`,
  // A hung test must fail, not stall CI: every test file gets this long at most.
  `--test-timeout=${process.env.TEST_TIMEOUT_MS ?? '300000'}`,
  '--test-reporter=spec',
  '--test-reporter-destination=stdout',
  '--test-reporter=./tools/test-summary-reporter.ts',
  '--test-reporter-destination=stdout',
  ...globs,
];

// The source condition must reach every child process (test files, servers they spawn).
const nodeOptions = [process.env.NODE_OPTIONS, '--conditions=@tenantgate/source'].filter(Boolean).join(' ');
const child = spawn(process.execPath, args, {
  cwd: root,
  stdio: 'inherit',
  env: { ...process.env, NODE_OPTIONS: nodeOptions },
});
child.on('exit', (code, signal) => {
  process.exitCode = code ?? (signal ? 1 : 0);
});
