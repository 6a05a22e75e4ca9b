// The gateway against direct PostgreSQL and PgBouncer, in one run on one machine (the
// targets are in docs/benchmarks.md): one PostgreSQL 15 with TLS, the gateway as its own process, PgBouncer
// in session mode, TLS and SCRAM on every path; pgbench, psql COPY and idle sessions through each.
//
//   npm run bench -- gateway
//   BENCH_SECONDS=30 BENCH_IDLE_SESSIONS=2000 npm run bench -- gateway
//   BENCH_QUICK=1 npm run bench -- gateway     (a short development run)
//   BENCH_WORKLOADS=connect-rate BENCH_GATEWAY_NODE_OPTIONS='--cpu-prof --cpu-prof-dir=/tmp/prof' npm run bench -- gateway
//
// BENCH_SECONDS, BENCH_ROUNDS, BENCH_WARMUP_SECONDS, BENCH_IDLE_SESSIONS, BENCH_POOLED_SESSIONS,
// BENCH_COPY_MB, BENCH_SCALE,
// BENCH_WORKLOADS (ids, comma-separated), BENCH_GATEWAY_LOG_LEVEL, BENCH_GATEWAY_NODE_OPTIONS,
// BENCH_GATEWAY_REDIS=1 (a redis-server for the gateway: cancel keys and tenant limits in Redis),
// BENCH_GATEWAY_TRACING=1 (traces on, sent over OTLP to a sink in the bench that accepts them),
// BENCH_GATEWAY_WORKERS (GATEWAY_WORKERS of its gateway, default 1),
// BENCH_PIN=1 (PostgreSQL and the load on CPU 0, the proxy alone on CPU 1: bench/src/pinning.ts),
// BENCH_CHART=<file> (an SVG bar chart of the run: bench/src/gateway-chart.ts);
// BENCH_PGBENCH, BENCH_PSQL, BENCH_PGBOUNCER name the binaries.
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { cpus, loadavg } from 'node:os';
import { prepareCopy, type CopyData } from './copy.ts';
import { otlpExports, PATHS, startGatewayStack, type GatewayStack, type PathName } from './gateway-stack.ts';
import { gatewayProblems } from './gateway-process.ts';
import { WORKLOADS, type RunSettings, type WorkloadContext } from './gateway-workloads.ts';
import { PGBENCH, pgbench } from './pgbench.ts';
import { PGBOUNCER, pgbouncerProblems } from './pgbouncer.ts';
import { allowedCpus, checkPinning, LOAD_CPU, pinProcessTree, PROXY_CPU } from './pinning.ts';
import { Cleanup, cleanupOnSignal, killRunningCommands, openFilesHardLimit, residentKiB, runCommand } from './processes.ts';

export interface GatewayBenchOptions extends RunSettings {
  /** Seconds of `pgbench -S -c 8 -j 2` per path before the first measurement; 0 for none. */
  readonly warmupSeconds: number;
  /** Size of the COPY table in COPY text format. */
  readonly copyMegabytes: number;
  /** pgbench -i scale. */
  readonly scale: number;
  /** The gateway's LOG_LEVEL. */
  readonly gatewayLogLevel: string;
  /** NODE_OPTIONS of the gateway process, e.g. to profile it; empty for none. */
  readonly gatewayNodeOptions: string;
  /** The gateway with REDIS_URL: cancel keys and the tenant's limits held in a redis-server, as in a fleet. */
  readonly gatewayRedis: boolean;
  /** The gateway with traces on, exported over OTLP/HTTP to a sink that accepts and drops them. */
  readonly gatewayTracing: boolean;
  /** GATEWAY_WORKERS of the bench's gateway (BENCH_GATEWAY_WORKERS). */
  readonly gatewayWorkers: number;
  /** PostgreSQL and the load on one CPU, the proxy alone on another (BENCH_PIN=1). */
  readonly pin: boolean;
  /** Ids of the workloads to run, in table order; default all. */
  readonly workloads: readonly string[];
  /** Each workload runs this many times, the paths taking turns; the table shows the median. */
  readonly rounds: number;
  /** Told what starts next (stderr in `npm run bench`); default silent. */
  readonly progress?: (text: string) => void;
}

/** Every knob from BENCH_* variables; BENCH_QUICK=1 changes the defaults to a short run. */
export function optionsFromEnvironment(env: NodeJS.ProcessEnv = process.env): GatewayBenchOptions {
  const quick = env.BENCH_QUICK === '1';
  const number = (name: string, fallback: number, minimum: number): number => {
    const value = env[name] === undefined || env[name] === '' ? fallback : Number(env[name]);
    if (!Number.isInteger(value) || value < minimum)
      throw new Error(`${name}: expected an integer of at least ${minimum}, got "${env[name]}"`);
    return value;
  };
  return {
    seconds: number('BENCH_SECONDS', quick ? 2 : 10, 1),
    warmupSeconds: number('BENCH_WARMUP_SECONDS', quick ? 1 : 3, 0),
    idleSessions: number('BENCH_IDLE_SESSIONS', quick ? 200 : 1000, 1),
    pooledSessions: number('BENCH_POOLED_SESSIONS', quick ? 500 : 10_000, 1),
    copyMegabytes: number('BENCH_COPY_MB', quick ? 20 : 150, 1),
    scale: number('BENCH_SCALE', quick ? 1 : 10, 1),
    gatewayLogLevel: env.BENCH_GATEWAY_LOG_LEVEL ?? 'info',
    gatewayNodeOptions: env.BENCH_GATEWAY_NODE_OPTIONS ?? '',
    gatewayRedis: env.BENCH_GATEWAY_REDIS === '1',
    gatewayTracing: env.BENCH_GATEWAY_TRACING === '1',
    gatewayWorkers: number('BENCH_GATEWAY_WORKERS', 1, 1),
    pin: env.BENCH_PIN === '1',
    workloads: workloadIds(env.BENCH_WORKLOADS),
    rounds: number('BENCH_ROUNDS', 1, 1),
  };
}

function workloadIds(list: string | undefined): string[] {
  const known = WORKLOADS.map((workload) => workload.id);
  if (list === undefined || list === '') return known;
  const ids = list.split(',').map((id) => id.trim());
  const unknown = ids.filter((id) => !known.includes(id));
  if (unknown.length > 0) throw new Error(`BENCH_WORKLOADS: unknown ${unknown.join(', ')}; known: ${known.join(', ')}`);
  return ids;
}

export type PathFigures = Partial<Record<PathName, number | Error>>;

export interface GatewayBenchResult {
  readonly options: GatewayBenchOptions;
  /** By workload id. */
  readonly figures: ReadonlyMap<string, PathFigures>;
  /** Observations for under the table: leftover sessions, warnings in the proxies' logs. */
  readonly notes: readonly string[];
  /** Versions and machine, for the record. */
  readonly conditions: string;
}

export async function runGatewayBench(options: GatewayBenchOptions): Promise<GatewayBenchResult> {
  const progress = options.progress ?? (() => {});
  const loadAtStart = loadavg()[0]!;
  const cleanup = new Cleanup();
  const interrupted = new AbortController();
  const removeSignalHandlers = cleanupOnSignal(cleanup, interrupted);
  try {
    if (options.pin) {
      checkPinning();
      // Before anything starts: PostgreSQL and every client command inherit it.
      pinProcessTree(process.pid, LOAD_CPU);
    }
    // Two sockets per pooled session in one gateway process: no more than its open-file limit allows.
    const pooledCap = Math.floor((openFilesHardLimit() - 1024) / 2);
    const pooledSessions = options.workloads.includes('pooled-idle-memory') ? Math.min(options.pooledSessions, pooledCap) : 0;
    const settings = { ...options, pooledSessions: pooledSessions || options.pooledSessions };
    progress(`starting PostgreSQL, the gateway and PgBouncer (${options.idleSessions} sessions max)`);
    const stack = await startGatewayStack(
      {
        maxSessions: options.idleSessions,
        pooledSessions,
        gateway: {
          logLevel: options.gatewayLogLevel,
          nodeOptions: options.gatewayNodeOptions,
          redis: options.gatewayRedis,
          tracing: options.gatewayTracing,
          workers: options.gatewayWorkers,
        },
      },
      cleanup,
    );
    cleanup.add(killRunningCommands);
    if (options.pin) for (const name of ['gateway', 'PgBouncer', 'relay'] as const) pinProcessTree(stack.paths[name].pid!, PROXY_CPU);
    const conditions = await describeConditions(stack, options, loadAtStart);
    progress(`pgbench -i -s ${options.scale}, COPY table of ${options.copyMegabytes} MB`);
    const rssAtStartKiB = { PgBouncer: residentKiB(stack.paths.PgBouncer.pid!), gateway: residentKiB(stack.paths.gateway.pid!) };
    const notes: string[] = [];
    if (pooledSessions < options.pooledSessions && pooledSessions > 0) {
      notes.push(
        `${pooledSessions} pooled sessions instead of ${options.pooledSessions}: the open-file hard limit here (${openFilesHardLimit()}) allows the gateway two sockets for no more; raise it (ulimit -Hn, as root) for more.`,
      );
    }
    const context: WorkloadContext = {
      rssAtStartKiB,
      pooled: stack.pooled,
      gatewayMetricsUrl: stack.gatewayMetricsUrl,
      settings,
      postgres: stack.postgres,
      copyData: await prepare(stack, options),
      dir: stack.dir,
      note: (text) => notes.push(text),
    };
    progress(`warm-up, ${options.warmupSeconds} s per path`);
    await warmUp(stack, options.warmupSeconds, context);
    const figures = await measureAll(context, stack, options, { progress, signal: interrupted.signal });
    notes.push(...(await logProblems(stack)));
    if (options.gatewayTracing) notes.push(`The gateway sent ${otlpExports} OTLP trace exports to the bench's sink.`);
    return { options: settings, figures, notes, conditions };
  } finally {
    await cleanup.run();
    removeSignalHandlers();
  }
}

/**
 * Workload by workload, the paths taking turns (round after round), so each ratio compares runs
 * seconds apart, and a burst of other work on the machine hits one round rather than one path.
 */
async function measureAll(
  context: WorkloadContext,
  stack: GatewayStack,
  options: GatewayBenchOptions,
  run: { progress: (text: string) => void; signal: AbortSignal },
): Promise<Map<string, PathFigures>> {
  const figures = new Map<string, PathFigures>();
  for (const workload of WORKLOADS.filter((w) => options.workloads.includes(w.id))) {
    const samples = new Map<PathName, (number | Error)[]>(workload.paths.map((name) => [name, []]));
    const rounds = workload.once === true ? 1 : options.rounds;
    for (let round = 1; round <= rounds; round++) {
      for (const name of workload.paths) {
        run.signal.throwIfAborted();
        run.progress(`${workload.id} via ${name}${rounds > 1 ? `, round ${round} of ${rounds}` : ''}`);
        // A failing path is a finding, not the end of the run: the table shows "error", the notes why.
        samples.get(name)!.push(await workload.measure(context, stack.paths[name]).catch((error: unknown) => asError(error)));
      }
    }
    figures.set(workload.id, Object.fromEntries([...samples].map(([name, values]) => [name, median(values)])));
  }
  return figures;
}

/** The median of the rounds, or the first error of a path that failed in any. */
function median(values: readonly (number | Error)[]): number | Error {
  const error = values.find((value) => value instanceof Error);
  if (error !== undefined) return error;
  const sorted = (values as number[]).toSorted((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2;
}

async function prepare(stack: GatewayStack, options: GatewayBenchOptions): Promise<CopyData> {
  const init = await runCommand(PGBENCH, ['-i', '-I', 'dtGvp', '-q', '-s', String(options.scale)], {
    env: stack.paths.direct.env,
    timeoutMs: 600_000,
  });
  if (init.code !== 0) throw new Error(`pgbench -i failed: ${init.stderr.trim()}`);
  return prepareCopy(stack.postgres, stack.paths.direct.env, stack.dir, options.copyMegabytes);
}

/** JIT, TLS session caches, PgBouncer's pool and the backends' caches, before anything counts. */
async function warmUp(stack: GatewayStack, seconds: number, context: WorkloadContext): Promise<void> {
  if (seconds === 0) return;
  for (const name of PATHS) {
    await pgbench(stack.paths[name].env, ['-n', '-S', '-c', '8', '-j', '2', '-T', String(seconds)], seconds).catch((error: unknown) =>
      context.note(`warm-up via ${name} failed: ${asError(error).message}`),
    );
  }
}

async function logProblems(stack: GatewayStack): Promise<string[]> {
  const notes: string[] = [];
  for (const [name, scan] of [
    ['gateway', gatewayProblems],
    ['PgBouncer', pgbouncerProblems],
  ] as const) {
    const file = stack.paths[name].logFile;
    if (file === undefined) continue;
    const problems = scan(await readFile(file, 'utf8'));
    if (problems.length > 0)
      notes.push(`${name} logged ${problems.length} warnings or errors; the first: ${problems.slice(0, 3).join(' | ')}`);
  }
  return notes;
}

async function describeConditions(stack: GatewayStack, options: GatewayBenchOptions, loadAtStart: number): Promise<string> {
  const [{ server_version: postgres }] = await stack.postgres.sql<{ server_version: string }>('show server_version');
  const version = (command: string) => execFileSync(command, ['--version'], { encoding: 'utf8' }).split('\n')[0]!.trim();
  const cpu = cpus();
  return [
    `PostgreSQL ${postgres}, ${version(PGBOUNCER)}, ${version(PGBENCH)}, Node ${process.version}`,
    `${cpu.length} CPUs (${cpu[0]?.model.trim() ?? 'unknown'}), load average ${loadAtStart.toFixed(2)} at start`,
    options.pin
      ? `pinned: PostgreSQL, pgbench and psql on CPU ${allowedCpus(postmasterPid(stack.postgres) ?? process.pid)}, the gateway on CPU ${allowedCpus(stack.paths.gateway.pid!)}, PgBouncer on CPU ${allowedCpus(stack.paths.PgBouncer.pid!)}`
      : 'not pinned: every process on every CPU',
    `pgbench scale ${options.scale}, ${options.seconds} s per pgbench run after ${options.warmupSeconds} s of warm-up per path, ` +
      `median of ${options.rounds} round${options.rounds === 1 ? '' : 's'}, ` +
      `COPY of ${options.copyMegabytes} MB, ${options.idleSessions} idle sessions, gateway LOG_LEVEL=${options.gatewayLogLevel}${options.gatewayRedis ? ', gateway with Redis' : ''}${options.gatewayTracing ? ', gateway tracing every connection' : ''}${options.gatewayWorkers > 1 ? `, GATEWAY_WORKERS=${options.gatewayWorkers} (CPU rows: every worker; RSS rows: the primary only)` : ''}`,
  ].join('; ');
}

/** The PostgreSQL server's process, from its data directory's postmaster.pid. */
function postmasterPid(postgres: GatewayStack['postgres']): number | undefined {
  if (postgres.dataDir === undefined) return undefined;
  return Number(readFileSync(join(postgres.dataDir, 'postmaster.pid'), 'utf8').split('\n')[0]);
}

function asError(error: unknown): Error {
  return error instanceof Error ? error : new Error(String(error));
}
