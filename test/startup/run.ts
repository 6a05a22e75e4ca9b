// Runs one of our programs the way a person does, and checks the line it stops with.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { createServer, type Server } from 'node:net';
import { fileURLToPath } from 'node:url';
import type { TestContext } from 'node:test';

export const ROOT = fileURLToPath(new URL('../..', import.meta.url));

export interface Finished {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

/** `command args` in the repository, with only PATH and `env`; resolves once it has exited. */
export async function runToEnd(command: string, args: readonly string[], env: Record<string, string>): Promise<Finished> {
  const child = spawn(command, args, { cwd: ROOT, env: { PATH: process.env.PATH ?? '', ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const [code] = (await once(child, 'close')) as [number | null];
  return { code, stdout, stderr };
}

/** A TypeScript entry point of ours, as `npm run` starts it. */
export function runScript(script: string, env: Record<string, string>): Promise<Finished> {
  return runToEnd(process.execPath, ['--conditions=@tenantgate/source', script], env);
}

/** It stopped with a nonzero status and `line` alone on stderr: no stack, nothing else. */
export function assertStoppedWith(result: Finished, line: string): void {
  assert.notEqual(result.code, 0, result.stderr);
  assert.doesNotMatch(result.stderr, /^ {4}at /m);
  assert.equal(result.stderr, `${line}\n`);
}

/** A port on 127.0.0.1 held by another server until the test ends. */
export async function occupiedPort(t: TestContext): Promise<number> {
  const server: Server = createServer().listen(0, '127.0.0.1');
  t.after(() => server.close());
  await once(server, 'listening');
  const address = server.address();
  assert.ok(address !== null && typeof address === 'object');
  return address.port;
}
