// Child processes of a benchmark run: long-running servers tied to the life of the bench process,
// commands run to completion with a deadline, and one list of cleanup steps run in reverse order
// at the end of a run, on Ctrl-C and on SIGTERM.
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { accessSync, closeSync, constants, openSync, readdirSync, readFileSync } from 'node:fs';
import { connect } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';

/**
 * Cleanup steps, run newest first; a failing step is reported and the others still run. Every
 * caller of `run` (the end of the run, a signal handler) waits for the same, single pass.
 */
export class Cleanup {
  #steps: (() => unknown)[] = [];
  #running: Promise<void> | undefined;

  add(step: () => unknown): void {
    this.#steps.push(step);
  }

  run(): Promise<void> {
    this.#running ??= this.#runSteps();
    return this.#running;
  }

  async #runSteps(): Promise<void> {
    for (const step of this.#steps.splice(0).reverse()) {
      try {
        await step();
      } catch (error) {
        console.error(`bench: cleanup step failed: ${error instanceof Error ? error.message : String(error)}`);
      }
    }
  }
}

/**
 * Ctrl-C or SIGTERM: abort `controller` (so no new work starts), run the cleanup, then exit as a
 * shell expects (128 + signal). The children are in our process group and get Ctrl-C as well;
 * the cleanup makes sure they are gone. Returns a function that removes the handlers.
 */
export function cleanupOnSignal(cleanup: Cleanup, controller: AbortController): () => void {
  const handlers = (['SIGINT', 'SIGTERM'] as const).map((signal) => {
    const handler = () => {
      controller.abort(new Error(`interrupted by ${signal}`));
      console.error(`bench: ${signal}, stopping servers and removing temporary files`);
      void cleanup.run().finally(() => process.exit(signal === 'SIGINT' ? 130 : 143));
    };
    process.once(signal, handler);
    return [signal, handler] as const;
  });
  return () => {
    for (const [signal, handler] of handlers) process.off(signal, handler);
  };
}

export interface ServerOptions {
  readonly env: NodeJS.ProcessEnv;
  readonly cwd: string;
  /** stdout and stderr are appended here. */
  readonly logFile: string;
  readonly account?: OsAccount | undefined;
}

/**
 * Starts a server whose pid is the server's own (its RSS is measured): `setpriv` sets a
 * parent-death signal and then execs it, so a bench process killed with SIGKILL leaves no server.
 */
export function startServer(command: string, args: readonly string[], options: ServerOptions): ChildProcess {
  const log = openSync(options.logFile, 'a');
  try {
    const setpriv = executable('/usr/bin/setpriv');
    const [file, argv] = setpriv === undefined ? [command, [...args]] : [setpriv, ['--pdeathsig', 'SIGKILL', '--', command, ...args]];
    const child = spawn(file, argv, {
      cwd: options.cwd,
      env: options.env,
      stdio: ['ignore', log, log],
      uid: options.account?.uid,
      gid: options.account?.gid,
    });
    // Reported by the caller when the server is not up in time; not an unhandled 'error'.
    child.on('error', () => {});
    return child;
  } finally {
    closeSync(log);
  }
}

export function hasExited(child: ChildProcess): boolean {
  return child.exitCode !== null || child.signalCode !== null;
}

/** Sends `signal`, then SIGKILL if the process is still there after `graceMs`. */
export async function stopServer(child: ChildProcess, signal: NodeJS.Signals, graceMs = 5_000): Promise<void> {
  if (hasExited(child)) return;
  const exited = new Promise((resolve) => child.once('exit', resolve));
  child.kill(signal);
  const outcome = await Promise.race([exited, sleep(graceMs, 'timeout')]);
  if (outcome === 'timeout') {
    child.kill('SIGKILL');
    await exited;
  }
}

/** Polls until `port` on 127.0.0.1 accepts a TCP connection; fails when the server exits or time is up. */
export async function waitForPort(child: ChildProcess, port: number, logFile: string, what: string, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await accepts(port))) {
    if (hasExited(child) || Date.now() > deadline) {
      const tail = readFileSync(logFile, 'utf8').trimEnd().split('\n').slice(-20).join('\n');
      const why = hasExited(child) ? `exited with ${child.exitCode ?? child.signalCode}` : 'timed out';
      throw new Error(`${what} did not start (${why}); last lines of ${logFile}:\n${tail}`);
    }
    await sleep(25);
  }
}

function accepts(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host: '127.0.0.1', port });
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

export interface CommandOptions {
  readonly env: NodeJS.ProcessEnv;
  /** A file given as stdin; default none. */
  readonly stdinFile?: string;
  /** Keep stdout (default); false sends it to /dev/null. */
  readonly keepStdout?: boolean;
  /** Killed with SIGKILL after this long; the result then says so. */
  readonly timeoutMs: number;
}

export interface CommandResult {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly stdout: string;
  readonly stderr: string;
  readonly timedOut: boolean;
}

/** Commands still running, killed by `killRunningCommands` (cleanup after an interrupted run). */
const running = new Set<ChildProcess>();

/** Runs a client (pgbench, psql) to completion. */
export function runCommand(command: string, args: readonly string[], options: CommandOptions): Promise<CommandResult> {
  const stdin = options.stdinFile === undefined ? 'ignore' : openSync(options.stdinFile, 'r');
  const child = spawn(command, args, { env: options.env, stdio: [stdin, options.keepStdout === false ? 'ignore' : 'pipe', 'pipe'] });
  if (typeof stdin === 'number') closeSync(stdin);
  return completion(child, options.timeoutMs);
}

/** Starts a client that runs until stopped (idle sessions); `runCommand` semantics otherwise. */
export function startCommand(
  command: string,
  args: readonly string[],
  options: CommandOptions,
): { child: ChildProcess; result: Promise<CommandResult> } {
  const child = spawn(command, args, { env: options.env, stdio: ['ignore', 'pipe', 'pipe'] });
  return { child, result: completion(child, options.timeoutMs) };
}

function completion(child: ChildProcess, timeoutMs: number): Promise<CommandResult> {
  running.add(child);
  const out: Buffer[] = [];
  const err: Buffer[] = [];
  child.stdout?.on('data', (chunk: Buffer) => out.push(chunk));
  child.stderr?.on('data', (chunk: Buffer) => err.push(chunk));
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    child.kill('SIGKILL');
  }, timeoutMs);
  return new Promise((resolve, reject) => {
    child.once('error', (error) => {
      clearTimeout(timer);
      running.delete(child);
      reject(error);
    });
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      running.delete(child);
      resolve({ code, signal, stdout: Buffer.concat(out).toString('utf8'), stderr: Buffer.concat(err).toString('utf8'), timedOut });
    });
  });
}

export function killRunningCommands(): void {
  for (const child of running) child.kill('SIGKILL');
}

/** Resident set size of a process in KiB, from /proc/<pid>/status. */
export function residentKiB(pid: number): number {
  const match = /^VmRSS:\s+(\d+) kB$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  if (match === null) throw new Error(`no VmRSS in /proc/${pid}/status`);
  return Number(match[1]);
}

export interface OsAccount {
  readonly name: string;
  readonly uid: number;
  readonly gid: number;
}

/**
 * The account PgBouncer runs as: it refuses root ("PgBouncer should not run as root"), so a root
 * bench process hands it to `postgres` (as the fixtures do for PostgreSQL), else `nobody`.
 */
export function unprivilegedAccount(): OsAccount | undefined {
  if (process.getuid?.() !== 0) return undefined;
  for (const name of ['postgres', 'nobody']) {
    try {
      const id = (flag: string) => Number(execFileSync('id', [flag, name], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }));
      return { name, uid: id('-u'), gid: id('-g') };
    } catch {
      // No such account: try the next.
    }
  }
  throw new Error('running as root, and neither a postgres nor a nobody account exists to run PgBouncer as');
}

export function executable(path: string): string | undefined {
  try {
    accessSync(path, constants.X_OK);
    return path;
  } catch {
    return undefined;
  }
}

/** The open-file hard limit of this process, which the servers it starts inherit. */
export function openFilesHardLimit(): number {
  const hard = /Max open files\s+\d+\s+(\d+|unlimited)/.exec(readFileSync('/proc/self/limits', 'utf8'))?.[1];
  return hard === undefined || hard === 'unlimited' ? Number.MAX_SAFE_INTEGER : Number(hard);
}

/** Every process below `pid` (children, their children, ...), from /proc's task children lists. */
export function descendantPids(pid: number): number[] {
  const children = readdirSync(`/proc/${pid}/task`).flatMap((tid) => {
    try {
      return readFileSync(`/proc/${pid}/task/${tid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number);
    } catch {
      return [];
    }
  });
  return children.flatMap((child) => [child, ...descendantPids(child)]);
}
