// Memory per idle session: pgbench opens `count` TLS sessions through a proxy; each runs one
// query and then sleeps. The query matters for PgBouncer, which links a server connection to a
// client at its first query (the gateway does at login): both then hold two TLS legs per session.
// The proxy's RSS (VmRSS) is read before and once every session is idle in PostgreSQL.
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { PostgresServer } from '@tenantgate/testing';
import { BENCH_ROLE, type ClientPath } from './gateway-stack.ts';
import { PGBENCH } from './pgbench.ts';
import { residentKiB, runCommand, startCommand, type CommandResult } from './processes.ts';

const MARKER = 'idle-session';
/** Time for the proxy's RSS to settle once the last session is idle (buffers freed, timers run). */
const SETTLE_MS = 1_000;

export interface IdleSessionFigures {
  /** (RSS with the sessions − RSS before) / sessions, KiB. */
  readonly kibPerSession: number;
  /** The proxy's RSS before the sessions and with them, KiB. */
  readonly rssKiB: { readonly before: number; readonly with: number };
  /**
   * Backend sessions still open 10 s after the clients went away: 0 for the gateway, which must
   * close both legs; not counted for PgBouncer, which keeps its server connections pooled by design.
   */
  readonly leftOpen: number | undefined;
}

/**
 * Where the sessions are seen to be idle: in PostgreSQL's pg_stat_activity, or, when the path's
 * backend pools its server connections (PgBouncer in transaction mode), as the proxy's
 * established TCP connections to that backend's port (`ss`), one per session.
 */
export type IdleProbe = { readonly postgres: PostgresServer } | { readonly backendPort: number };

export async function idleSessionMemory(path: ClientPath, probe: IdleProbe, count: number, dir: string): Promise<IdleSessionFigures> {
  if (path.pid === undefined) throw new Error(`${path.name}: no proxy process to measure`);
  if ('backendPort' in probe) return pooledIdleSessionMemory(path, path.pid, probe.backendPort, count, dir);
  const { postgres } = probe;
  const script = await idleScript(dir);
  const sessionsBefore = await countSessions(postgres);
  const before = residentKiB(path.pid);
  const connectMs = count * 100 + 30_000;
  const { child, result } = startCommand(PGBENCH, pgbenchArgs(script, count), { env: path.env, timeoutMs: connectMs + 60_000 });
  let after: number;
  try {
    await waitForIdleSessions(postgres, count, result, connectMs);
    await sleep(SETTLE_MS);
    after = residentKiB(path.pid);
  } finally {
    child.kill('SIGTERM');
    await result;
  }
  return {
    kibPerSession: (after - before) / count,
    rssKiB: { before, with: after },
    leftOpen: await sessionsLeftOpen(postgres, path, sessionsBefore),
  };
}

async function idleScript(dir: string): Promise<string> {
  const script = join(dir, 'idle-session.sql');
  // pgbench keeps \sleep in microseconds in an int32: 2000 s is about the longest it takes.
  await writeFile(script, `select '${MARKER}';\n\\sleep 2000 s\n`);
  return script;
}

function pgbenchArgs(script: string, count: number): string[] {
  return ['-n', '-f', script, '-c', String(count), '-j', '2', '-t', '1'];
}

/** The same through a pooling backend: sessions counted as the proxy's connections to it. */
async function pooledIdleSessionMemory(
  path: ClientPath,
  pid: number,
  backendPort: number,
  count: number,
  dir: string,
): Promise<IdleSessionFigures> {
  const script = await idleScript(dir);
  const connectionsBefore = await backendConnections(backendPort);
  const before = residentKiB(pid);
  const connectMs = count * 100 + 30_000;
  const { child, result } = startCommand(PGBENCH, pgbenchArgs(script, count), { env: path.env, timeoutMs: connectMs + 60_000 });
  let exited: CommandResult | undefined;
  void result.then((done) => (exited = done));
  let after: number;
  try {
    const deadline = Date.now() + connectMs;
    for (;;) {
      const open = (await backendConnections(backendPort)) - connectionsBefore;
      if (open >= count) break;
      if (exited !== undefined)
        throw new Error(
          `pgbench exited with ${open} of ${count} sessions open:\n${exited.stderr.trim().split('\n').slice(-10).join('\n')}`,
        );
      if (Date.now() > deadline) throw new Error(`only ${open} of ${count} sessions were open after ${connectMs} ms`);
      await sleep(500);
    }
    // Every client has sent its query and is sleeping once its session is open for a moment.
    await sleep(SETTLE_MS * 3);
    after = residentKiB(pid);
  } finally {
    child.kill('SIGTERM');
    await result;
  }
  const closeDeadline = Date.now() + 10_000;
  let left = (await backendConnections(backendPort)) - connectionsBefore;
  while (left > 0 && Date.now() < closeDeadline) {
    await sleep(200);
    left = (await backendConnections(backendPort)) - connectionsBefore;
  }
  return { kibPerSession: (after - before) / count, rssKiB: { before, with: after }, leftOpen: Math.max(0, left) };
}

/** Established TCP connections to 127.0.0.1:`port` (client side), from `ss`. */
async function backendConnections(port: number): Promise<number> {
  const listed = await runCommand('ss', ['-Htn', 'state', 'established', `( dport = :${port} )`], {
    env: { PATH: process.env.PATH ?? '' },
    timeoutMs: 30_000,
  });
  if (listed.code !== 0) throw new Error(`ss failed: ${listed.stderr.trim()}`);
  return listed.stdout.split('\n').filter((line) => line.trim() !== '').length;
}

async function waitForIdleSessions(
  postgres: PostgresServer,
  count: number,
  pgbench: Promise<CommandResult>,
  timeoutMs: number,
): Promise<void> {
  let exited: CommandResult | undefined;
  void pgbench.then((result) => (exited = result));
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const idle = await countSessions(postgres, `state = 'idle' and query like '%${MARKER}%'`);
    if (idle >= count) return;
    if (exited !== undefined)
      throw new Error(`pgbench exited with ${idle} of ${count} sessions idle:\n${exited.stderr.trim().split('\n').slice(-10).join('\n')}`);
    if (Date.now() > deadline) throw new Error(`only ${idle} of ${count} sessions were idle after ${timeoutMs} ms`);
    await sleep(200);
  }
}

/** Counted against the sessions there before: PgBouncer's pooled server connections of earlier workloads stay. */
async function sessionsLeftOpen(postgres: PostgresServer, path: ClientPath, sessionsBefore: number): Promise<number | undefined> {
  if (path.name === 'PgBouncer') return undefined;
  const deadline = Date.now() + 10_000;
  let open = (await countSessions(postgres)) - sessionsBefore;
  while (open > 0 && Date.now() < deadline) {
    await sleep(200);
    open = (await countSessions(postgres)) - sessionsBefore;
  }
  return Math.max(0, open);
}

async function countSessions(postgres: PostgresServer, condition = 'true'): Promise<number> {
  const rows = await postgres.sql<{ n: number }>(`select count(*)::int as n from pg_stat_activity where usename = $1 and ${condition}`, [
    BENCH_ROLE,
  ]);
  return rows[0]?.n ?? 0;
}
