// The control plane as processes: `npm run migrate` and `npm run control-plane` (main.ts),
// configured by the environment, on an embedded PGlite store.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import { createTempDir, removeTempDir } from '@tenantgate/testing';
import { ADMIN_TOKEN, call, tenantBody } from './harness.ts';

const SRC = new URL('../../apps/control-plane/src/', import.meta.url);
const MAIN = fileURLToPath(new URL('main.ts', SRC));
const MIGRATE = fileURLToPath(new URL('migrate.ts', SRC));
const VARIABLES = [
  'CONTROL_PLANE_LISTEN',
  'DATABASE_URL',
  'CONTROL_PLANE_DATA_DIR',
  'REDIS_URL',
  'CONTROL_PLANE_ADMIN_TOKENS',
  'CONTROL_PLANE_GATEWAY_TOKENS',
  'LOG_LEVEL',
];

let dataDir: string;

before(() => {
  dataDir = createTempDir('control-plane-main');
});

after(async () => {
  if (dataDir !== undefined) await removeTempDir(dataDir);
});

function start(script: string, env: Record<string, string>, args: string[] = []): ChildProcess {
  return spawn(process.execPath, ['--conditions=@tenantgate/source', script, ...args], {
    env: { PATH: process.env.PATH ?? '', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
}

interface Run {
  /** Resolves at exit with everything the process wrote. */
  readonly exited: Promise<{ code: number | null; stdout: string; stderr: string }>;
  /** The first JSON log line on stdout whose msg is `msg`. */
  logLine(msg: string): Promise<Record<string, unknown>>;
}

function watch(child: ChildProcess): Run {
  let stdout = '';
  let stderr = '';
  const waiters: (() => void)[] = [];
  child.stdout?.on('data', (chunk) => {
    stdout += chunk;
    for (const wake of waiters.splice(0)) wake();
  });
  child.stderr?.on('data', (chunk) => (stderr += chunk));
  const exited = once(child, 'exit').then(([code]) => ({ code: code as number | null, stdout, stderr }));
  const find = (msg: string) =>
    stdout
      .slice(0, stdout.lastIndexOf('\n'))
      .split('\n')
      .filter((line) => line.startsWith('{'))
      .map((line) => JSON.parse(line) as Record<string, unknown>)
      .find((entry) => entry.msg === msg);
  const logLine = async (msg: string) => {
    for (;;) {
      const entry = find(msg);
      if (entry !== undefined) return entry;
      const more = new Promise<void>((resolve) => waiters.push(resolve));
      if ((await Promise.race([more.then(() => 'more'), exited.then(() => 'exited')])) === 'exited' && find(msg) === undefined) {
        throw new Error(`exited without logging "${msg}": ${stderr}${stdout}`);
      }
    }
  };
  return { exited, logLine };
}

function output(child: ChildProcess): Run['exited'] {
  return watch(child).exited;
}

test('--help lists every variable with its default', async () => {
  const { code, stdout } = await output(start(MAIN, {}, ['--help']));
  assert.equal(code, 0);
  for (const name of VARIABLES) assert.match(stdout, new RegExp(`^  ${name}  \\(`, 'm'));
  assert.match(stdout, /CONTROL_PLANE_LISTEN {2}\(default 127\.0\.0\.1:8080\)/);
  assert.match(stdout, /CONTROL_PLANE_DATA_DIR {2}\(default \.data\/control-plane\)/);
  assert.match(stdout, /LOG_LEVEL {2}\(default info\)/);
});

test('a bad value stops start-up: exit 2, one line naming the variable, no stack trace', async () => {
  const { code, stdout, stderr } = await output(
    start(MAIN, { CONTROL_PLANE_ADMIN_TOKENS: ADMIN_TOKEN, CONTROL_PLANE_LISTEN: '127.0.0.1:http', CONTROL_PLANE_DATA_DIR: dataDir }),
  );
  assert.equal(code, 2);
  assert.equal(stdout, '');
  const lines = stderr.trimEnd().split('\n');
  assert.equal(lines.length, 1, stderr);
  assert.match(lines[0], /CONTROL_PLANE_LISTEN: expected host:port.*got "127\.0\.0\.1:http"/);
});

test('without an admin token it does not start', async () => {
  const { code, stderr } = await output(start(MAIN, { CONTROL_PLANE_DATA_DIR: dataDir }));
  assert.equal(code, 2);
  assert.match(stderr.trim(), /^[^\n]*CONTROL_PLANE_ADMIN_TOKENS: is required[^\n]*$/);
});

test('npm run migrate applies the migrations once; running it again changes nothing', async () => {
  const env = { CONTROL_PLANE_DATA_DIR: dataDir, LOG_LEVEL: 'info' };
  const first = await output(start(MIGRATE, env));
  assert.equal(first.code, 0, first.stderr);
  assert.deepEqual(JSON.parse(first.stdout.trim().split('\n').at(-1) as string).applied, [1, 2, 3]);
  const second = await output(start(MIGRATE, env));
  assert.equal(second.code, 0, second.stderr);
  assert.deepEqual(JSON.parse(second.stdout.trim().split('\n').at(-1) as string).applied, []);
});

test('starts on PGlite, serves the API, and exits 0 on SIGTERM', async (t) => {
  const child = start(MAIN, {
    CONTROL_PLANE_LISTEN: '127.0.0.1:0',
    CONTROL_PLANE_DATA_DIR: dataDir,
    CONTROL_PLANE_ADMIN_TOKENS: ADMIN_TOKEN,
  });
  t.after(() => child.kill('SIGKILL'));
  const run = watch(child);
  const ready = (await run.logLine('control plane ready')) as { address: { address: string; port: number }[] };
  const url = `http://${ready.address[0].address}:${ready.address[0].port}`;
  const health = await call(url, 'GET', '/healthz', { token: null });
  assert.deepEqual([health.status, health.body], [200, { status: 'ok' }]);
  assert.equal((await call(url, 'GET', '/readyz', { token: null })).status, 200);
  assert.equal((await call(url, 'POST', '/v1/tenants', { json: tenantBody('from-main') })).status, 201);
  const migrating = await output(start(MIGRATE, { CONTROL_PLANE_DATA_DIR: dataDir }));
  assert.equal(migrating.code, 1);
  assert.match(migrating.stdout, /data directory .* is in use by process \d+/);
  child.kill('SIGTERM');
  const { code, stdout } = await run.exited;
  assert.equal(code, 0);
  assert.match(stdout, /"msg":"stopped"/);
});

test('SIGTERM during start-up lets it finish, then exits 0', async (t) => {
  const child = start(MAIN, {
    CONTROL_PLANE_LISTEN: '127.0.0.1:0',
    CONTROL_PLANE_DATA_DIR: dataDir,
    CONTROL_PLANE_ADMIN_TOKENS: ADMIN_TOKEN,
  });
  t.after(() => child.kill('SIGKILL'));
  const run = watch(child);
  // Logged once the signal handlers are in place, before the store is open.
  await run.logLine('using the embedded PGlite store');
  child.kill('SIGTERM');
  const { code, stdout, stderr } = await run.exited;
  assert.equal(code, 0, stderr + stdout);
  assert.match(stdout, /"msg":"stopped"/);
  assert.match(stdout, /"msg":"control plane ready"/);
});
