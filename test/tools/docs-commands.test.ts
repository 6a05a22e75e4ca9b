// Every command in a fenced `sh` block of README.md and docs/*.md runs here as a reader would
// paste it, so the docs stay true. The conventions the docs are written to:
// - An `sh` block holds commands that run as they are, from the repository root; an example with
//   placeholders (`<token>`) or a transcript with its output (`$ command`) takes a plain fence.
// - The commands of one file run in order, in a session of their own: its own data directory
//   (TENANTGATE_DATA_DIR, and `.data/` in a command means it) and free ports in place of the
//   defaults 8080 (control plane), 6432 (gateway) and 9187 (admin port).
// - A command that starts a server (`npm start`, `npm run demo`, `npm run gateway`,
//   `npm run control-plane`) runs until it says it is ready; the commands after it run against
//   it; it is stopped with Ctrl-C (SIGINT to its process group) when the next server starts or
//   the file ends, and every process of it must then exit. Any other command must exit with 0.
// - Two commands cannot run as written inside the test run: `npm ci` would replace the installed
//   tree under the running tests, so it runs as `npm ci --dry-run` (which still fails when
//   package.json and the lockfile disagree); `npm test` would run this file again, so it runs
//   the suite's runner on one small test file.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { getFreePort } from '@tenantgate/testing';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const READY_WITHIN_MS = 120_000;
const COMMAND_WITHIN_MS = 120_000;
const STOP_WITHIN_MS = 30_000;

// Read before any test is declared: a test declared after an await may find the run over.
const documents = [
  'README.md',
  ...(await readdir(join(ROOT, 'docs'))).filter((name) => name.endsWith('.md')).map((name) => `docs/${name}`),
];
const texts = await Promise.all(documents.map((document) => readFile(join(ROOT, document), 'utf8')));

const SERVER = /\bnpm (?:start|run (?:--silent )?(?:demo|gateway|control-plane))\b(?!\s+--\s+--help)/;
/** Lines a server prints once it serves: the tools' banner, or the apps' own ready log line. */
const READY = /\(Ctrl-C stops it\)[\s\S]*\n\s*\n|"msg":"gateway listening"|"msg":"control plane ready"/;

/** The commands of one `sh` block, a continued line or a here-document as one. */
export function shCommands(block: string): string[] {
  const commands: string[] = [];
  let current: string[] = [];
  let heredoc: string | undefined;
  for (const line of block.split('\n')) {
    if (current.length === 0 && line.trim() === '') continue;
    current.push(line);
    if (heredoc !== undefined) {
      if (line === heredoc) heredoc = undefined;
    } else {
      heredoc = /<<-?\s*'?(\w+)'?/.exec(line)?.[1];
    }
    if (heredoc === undefined && !line.endsWith('\\')) {
      commands.push(current.join('\n'));
      current = [];
    }
  }
  assert.equal(current.length, 0, `an sh block ends inside a command: ${current.join('\n')}`);
  return commands;
}

test('shCommands joins continued lines and here-documents, and skips blank lines', () => {
  const block = ['a \\', '  b', '', "cat > f <<'EOF'", '{ }', 'EOF', 'c   # note', ''].join('\n');
  assert.deepEqual(shCommands(block), ['a \\\n  b', "cat > f <<'EOF'\n{ }\nEOF", 'c   # note']);
});

/** A server started on its own, or the other commands of a block as one script (what it exports stays for the next). */
type Step = { readonly server: string } | { readonly script: readonly string[]; readonly expected: string | undefined };

/**
 * The steps of a markdown text's `sh` blocks, in order. A `text` block right after an `sh` block
 * is what that block's commands print on stdout (`...` on a line of its own stands for any lines).
 */
export function shSteps(markdown: string): Step[] {
  const steps: Step[] = [];
  for (const match of markdown.matchAll(/^```sh\n([\s\S]*?)^```\n(?:\s*\n)*(?:^```text\n([\s\S]*?)^```$)?/gm)) {
    let script: string[] = [];
    const flush = (expected: string | undefined) => {
      if (script.length > 0) steps.push({ script, expected });
      script = [];
    };
    for (const command of shCommands(match[1]!)) {
      if (SERVER.test(command)) {
        flush(undefined);
        steps.push({ server: command });
      } else {
        script.push(command);
      }
    }
    assert.ok(match[2] === undefined || script.length > 0, `output given for a block that ends with a server: ${match[1]}`);
    flush(match[2]);
  }
  return steps;
}

test('shSteps puts a server on its own and gives a block its printed output', () => {
  const text = [
    '```sh',
    'npm ci && npm start',
    'npm test',
    '```',
    '',
    '```sh',
    'a',
    'b',
    '```',
    '```text',
    'out',
    '```',
    '```',
    'c',
    '```',
  ].join('\n');
  assert.deepEqual(shSteps(text), [
    { server: 'npm ci && npm start' },
    { script: ['npm test'], expected: undefined },
    { script: ['a', 'b'], expected: 'out\n' },
  ]);
});

/** Whether stdout is what the doc says it prints: line by line, trailing blanks aside, `...` for any lines. */
export function printedAsDocumented(stdout: string, expected: string): boolean {
  const lines = (text: string) =>
    text
      .replace(/\s+$/, '')
      .split('\n')
      .map((line) => line.trimEnd());
  const want = lines(expected);
  const got = lines(stdout);
  const match = (w: number, g: number): boolean => {
    if (w === want.length) return g === got.length;
    if (want[w] === '...') return match(w + 1, g) || (g < got.length && match(w, g + 1));
    return g < got.length && want[w] === got[g] && match(w + 1, g + 1);
  };
  return match(0, 0);
}

test('printedAsDocumented compares lines, with ... for any run of them', () => {
  assert.ok(printedAsDocumented('a  \nb\nc\n\n', 'a\nb\nc\n'));
  assert.ok(printedAsDocumented('a\nx\ny\nc\n', 'a\n...\nc\n'));
  assert.ok(printedAsDocumented('a\nc\n', 'a\n...\nc\n'));
  assert.ok(!printedAsDocumented('a\nb\n', 'a\nc\n'));
  assert.ok(!printedAsDocumented('a\nb\nd\n', 'a\n...\nc\n'));
});

interface Session {
  readonly dir: string;
  readonly dataDir: string;
  readonly env: NodeJS.ProcessEnv;
  readonly ports: { readonly controlPlane: number; readonly gateway: number; readonly admin: number };
}

async function newSession(name: string): Promise<Session> {
  const dir = await mkdtemp(join(tmpdir(), `tg-docs-${name}-`));
  const ports = { controlPlane: await getFreePort(), gateway: await getFreePort(), admin: await getFreePort() };
  const dataDir = join(dir, 'data');
  return {
    dir,
    dataDir,
    ports,
    env: {
      PATH: process.env.PATH ?? '',
      HOME: process.env.HOME ?? dir,
      PSQLRC: '/dev/null',
      TENANTGATE_DATA_DIR: dataDir,
      CONTROL_PLANE_LISTEN: `127.0.0.1:${ports.controlPlane}`,
      GATEWAY_LISTEN: `127.0.0.1:${ports.gateway}`,
      GATEWAY_ADMIN_LISTEN: `127.0.0.1:${ports.admin}`,
    },
  };
}

/** The command as this session runs it: its data directory and ports, and the two stand-ins. */
function localize(command: string, session: Session): string {
  const { controlPlane, gateway, admin } = session.ports;
  return command
    .replace(/(^|[\s='"])(?:\.\/)?\.data\//g, `$1${session.dataDir}/`)
    .replaceAll('127.0.0.1:8080', `127.0.0.1:${controlPlane}`)
    .replaceAll('127.0.0.1:9187', `127.0.0.1:${admin}`)
    .replaceAll('127.0.0.1:6432', `127.0.0.1:${gateway}`)
    .replaceAll('port=6432', `port=${gateway}`)
    .replace(/\bnpm ci\b(?! --dry-run)/g, 'npm ci --dry-run')
    .replace(/\bnpm test(?=\s*(?:#.*)?$)/gm, 'npm test -- test/startup/node-version.test.ts');
}

test('localize gives a command its session and the stand-ins for npm ci and npm test', () => {
  const session = { dataDir: '/tmp/s/data', ports: { controlPlane: 1, gateway: 2, admin: 3 } } as Session;
  assert.equal(
    localize(
      'npm ci && npm start    # stack\npsql "port=6432 sslrootcert=.data/certs/ca.crt" http://127.0.0.1:9187/x require(\'./.data/t\')',
      session,
    ),
    'npm ci --dry-run && npm start    # stack\npsql "port=2 sslrootcert=/tmp/s/data/certs/ca.crt" http://127.0.0.1:3/x require(\'/tmp/s/data/t\')',
  );
  assert.equal(
    localize('npm test               # every test', session),
    'npm test -- test/startup/node-version.test.ts               # every test',
  );
  assert.equal(localize('npm test -- test/x.test.ts', session), 'npm test -- test/x.test.ts');
});

interface Running {
  readonly child: ChildProcess;
  /** stdout and stderr as they came. */
  readonly output: () => string;
  readonly stdout: () => string;
}

function run(command: string, session: Session): Running {
  // Its own process group, as a terminal's foreground job: Ctrl-C reaches every process of it.
  const child = spawn('sh', ['-c', command], { cwd: ROOT, env: session.env, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
  let text = '';
  let stdout = '';
  child.stdout!.on('data', (chunk: Buffer) => {
    text += chunk.toString();
    stdout += chunk.toString();
  });
  child.stderr!.on('data', (chunk: Buffer) => (text += chunk.toString()));
  return { child, output: () => text, stdout: () => stdout };
}

async function exitOf(running: Running, withinMs: number, what: string): Promise<number | null> {
  if (running.child.exitCode !== null || running.child.signalCode !== null) return running.child.exitCode;
  const timer = setTimeout(() => running.child.kill('SIGKILL'), withinMs);
  const [code, signal] = (await once(running.child, 'exit')) as [number | null, NodeJS.Signals | null];
  clearTimeout(timer);
  assert.equal(signal, null, `${what} did not end within ${withinMs / 1000} s:\n${running.output()}`);
  return code;
}

function groupAlive(pid: number): boolean {
  try {
    process.kill(-pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** Ctrl-C: the whole job must stop, and stop cleanly. */
async function interrupt(server: Running, command: string): Promise<void> {
  const pid = server.child.pid!;
  if (groupAlive(pid)) process.kill(-pid, 'SIGINT');
  // The shell itself ends on the signal (a terminal's shell would ignore it), npm with 0 or 130;
  // what counts is that every process of the job goes, and none with an error.
  const [code, signal] =
    server.child.exitCode === null && server.child.signalCode === null
      ? await once(server.child, 'exit')
      : [server.child.exitCode, server.child.signalCode];
  assert.ok(code === 0 || code === 130 || signal === 'SIGINT', `${command} ended with ${code ?? signal} after Ctrl-C:\n${server.output()}`);
  for (let waited = 0; groupAlive(pid); waited += 100) {
    if (waited >= STOP_WITHIN_MS) process.kill(-pid, 'SIGKILL');
    assert.ok(waited < STOP_WITHIN_MS, `a process of ${command} outlived Ctrl-C by ${STOP_WITHIN_MS / 1000} s:\n${server.output()}`);
    await sleep(100);
  }
  assert.doesNotMatch(server.output(), /\n\s+at |uncaught|unhandled/i, `${command} stopped with an error:\n${server.output()}`);
}

async function waitReady(server: Running, command: string): Promise<void> {
  const deadline = Date.now() + READY_WITHIN_MS;
  while (!READY.test(server.output())) {
    assert.ok(
      server.child.exitCode === null && server.child.signalCode === null,
      `${command} exited before it was ready:\n${server.output()}`,
    );
    assert.ok(Date.now() < deadline, `${command} was not ready within ${READY_WITHIN_MS / 1000} s:\n${server.output()}`);
    await sleep(100);
  }
}

for (const [index, document] of documents.entries()) {
  const steps = shSteps(texts[index]!);
  if (steps.length === 0) continue;
  test(`${document}: every command of its sh blocks runs`, async (t) => {
    const session = await newSession(document.replace(/\W+/g, '-'));
    let server: { running: Running; command: string } | undefined;
    t.after(async () => {
      if (server !== undefined && groupAlive(server.running.child.pid!)) process.kill(-server.running.child.pid!, 'SIGKILL');
      await rm(session.dir, { recursive: true, force: true });
    });
    for (const step of steps) {
      if ('server' in step) {
        if (server !== undefined) await interrupt(server.running, server.command);
        server = { running: run(localize(step.server, session), session), command: step.server };
        await waitReady(server.running, step.server);
        continue;
      }
      const script = step.script.join('\n');
      const done = run(`set -e\n${localize(script, session)}`, session);
      const code = await exitOf(done, COMMAND_WITHIN_MS, script);
      assert.equal(code, 0, `${script}\nexited with ${code}:\n${done.output()}`);
      if (step.expected !== undefined) {
        assert.ok(
          printedAsDocumented(done.stdout(), step.expected),
          `${script}\nprinted:\n${done.stdout()}\nnot as documented:\n${step.expected}`,
        );
      }
    }
    if (server !== undefined) await interrupt(server.running, server.command);
    server = undefined;
  });
}
