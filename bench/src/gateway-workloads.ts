// The workloads of the gateway comparison and the target for each ("Performance
// targets"): what is run on which path, and which ratio must meet what.
import type { PostgresServer } from '@tenantgate/testing';
import { copyIn, copyOut, type CopyData } from './copy.ts';
import type { ClientPath, PathName } from './gateway-stack.ts';
import { idleSessionMemory } from './idle-sessions.ts';
import { firstQueryTimes } from './first-query.ts';
import { percentile, pgbench, pgbenchLatencies } from './pgbench.ts';
import { cpuMicrosecondsPerUnit } from './proxy-cpu.ts';

export interface RunSettings {
  /** Seconds per pgbench run. */
  readonly seconds: number;
  readonly idleSessions: number;
  /** Idle sessions through the gateway to the pooled tenant (PgBouncer in transaction mode behind it). */
  readonly pooledSessions: number;
}

export interface WorkloadContext {
  readonly settings: RunSettings;
  readonly postgres: PostgresServer;
  readonly copyData: CopyData;
  readonly dir: string;
  /** The gateway's path to the tenant behind PgBouncer in transaction mode, when started. */
  readonly pooled: { readonly path: ClientPath; readonly backendPort: number } | undefined;
  /** The gateway's Prometheus metrics (its admin port). */
  readonly gatewayMetricsUrl: string;
  /** Each proxy's RSS once started, before any session, KiB. */
  readonly rssAtStartKiB: Readonly<Partial<Record<PathName, number>>>;
  /** Observations worth a line under the table (sessions left open, ...). */
  note(text: string): void;
}

/** Gateway against `of` (its figure divided by theirs), the gateway's own figure, or none set. */
export interface Target {
  readonly of: 'direct' | 'PgBouncer' | 'absolute' | 'none';
  readonly atLeast?: number;
  readonly atMost?: number;
  /** The target as the report prints it. */
  readonly text: string;
}

export interface Workload {
  readonly id: string;
  /** The first column: what was run and the unit of the figures. */
  label(settings: RunSettings): string;
  /** In the order they run. */
  readonly paths: readonly PathName[];
  /** Fraction digits the figures are shown with. */
  readonly digits: number;
  readonly target: Target;
  /** Run once whatever BENCH_ROUNDS says. */
  readonly once?: boolean;
  measure(context: WorkloadContext, path: ClientPath): Promise<number>;
}

const ALL: readonly PathName[] = ['direct', 'PgBouncer', 'gateway'];

/** The pgbench arguments of a workload, as printed in the table. */
export function pgbenchArgs(options: string, seconds: number): string[] {
  return ['-n', ...options.split(' '), '-T', String(seconds)];
}

function pgbenchWorkload(id: string, options: string, figure: 'tps' | 'latencyMs', unit: string, digits: number, target: Target): Workload {
  return {
    id,
    label: (settings) => `\`pgbench ${pgbenchArgs(options, settings.seconds).join(' ')}\` ${unit}`,
    paths: ALL,
    digits,
    target,
    measure: async (context, path) =>
      (await pgbench(path.env, pgbenchArgs(options, context.settings.seconds), context.settings.seconds))[figure],
  };
}

/** The proxy's CPU per pgbench transaction (with -C, per new connection): PgBouncer, the bare Node relay and the gateway. */
function proxyCpuWorkload(id: string, options: string, unit: string, target: Target): Workload {
  return {
    id,
    label: (settings) => `proxy CPU per ${unit}, \`pgbench ${pgbenchArgs(options, settings.seconds).join(' ')}\`, µs`,
    paths: ['PgBouncer', 'relay', 'gateway'],
    digits: 1,
    target,
    measure: async (context, path) => {
      if (path.pid === undefined) throw new Error(`${path.name} has no process of its own`);
      return cpuMicrosecondsPerUnit(path.pid, async () => {
        const figures = await pgbench(path.env, pgbenchArgs(options, context.settings.seconds), context.settings.seconds);
        return figures.transactions;
      });
    },
  };
}

/**
 * Two rows from one set of samples per path and round: the p50 row takes the samples and keeps
 * them for the p99 row right after it, which takes them again (or samples on its own when it runs
 * without the p50 row).
 */
function percentileWorkloads(
  id: string,
  label: (settings: RunSettings, p: number) => string,
  sample: (context: WorkloadContext, path: ClientPath) => Promise<number[]>,
  targets: { readonly p50: Target; readonly p99: Target },
): Workload[] {
  const kept = new Map<PathName, number[][]>();
  const row = (p: 50 | 99): Workload => ({
    id: `${id}-p${p}`,
    label: (settings) => label(settings, p),
    paths: ALL,
    digits: 3,
    target: p === 50 ? targets.p50 : targets.p99,
    measure: async (context, path) => {
      const samples = p === 99 ? (kept.get(path.name)?.shift() ?? (await sample(context, path))) : await sample(context, path);
      if (p === 50) kept.set(path.name, [...(kept.get(path.name) ?? []), samples]);
      return percentile(samples, p);
    },
  });
  return [row(50), row(99)];
}

export const WORKLOADS: readonly Workload[] = [
  pgbenchWorkload('select-tps', '-S -c 8 -j 2', 'tps', 'TPS', 0, { of: 'PgBouncer', atLeast: 1.1, text: '≥ 1.1 × PgBouncer' }),
  // With -C every transaction opens its own connection: TPS is new connections per second.
  pgbenchWorkload('connect-rate', '-S -C -c 8 -j 2', 'tps', 'connections/s', 1, { of: 'direct', atLeast: 0.9, text: '≥ 0.9 × direct' }),
  pgbenchWorkload('latency', '-S -c 1', 'latencyMs', 'latency ms', 3, { of: 'direct', atMost: 1.3, text: '≤ 1.3 × direct' }),
  // Each transaction's latency from pgbench's per-transaction log.
  ...percentileWorkloads(
    'latency',
    (settings, p) => `\`pgbench ${pgbenchArgs('-S -c 1', settings.seconds).join(' ')}\` latency p${p}, ms`,
    (context, path) => pgbenchLatencies(path.env, pgbenchArgs('-S -c 1', context.settings.seconds), context.settings.seconds, context.dir),
    { p50: { of: 'direct', atMost: 1.3, text: '≤ 1.3 × direct' }, p99: { of: 'direct', atMost: 1.5, text: '≤ 1.5 × direct' } },
  ),
  // A new connection and its first query, one after another (TCP, TLS, SCRAM, startup, `select 1`).
  ...percentileWorkloads(
    'first-query',
    (settings, p) => `time to first query of a new connection, ${settings.seconds} s of them one after another, p${p}, ms`,
    (context, path) => firstQueryTimes(path.env, context.settings.seconds),
    { p50: { of: 'none', text: '(reported)' }, p99: { of: 'none', text: '(reported)' } },
  ),
  proxyCpuWorkload('select-cpu', '-S -c 8 -j 2', 'select-only transaction', { of: 'PgBouncer', atMost: 1, text: "≤ PgBouncer's" }),
  // Every transaction a new connection: the CPU of its TLS handshake, SCRAM and backend leg.
  proxyCpuWorkload('connect-cpu', '-S -C -c 8 -j 2', 'new connection', { of: 'absolute', atMost: 2500, text: '≤ 2.5 ms' }),
  {
    id: 'resolve-admit-p99',
    label: () => 'resolve + admit with a warm cache, p99 from the phase histogram (upper bucket bounds, summed), ms',
    paths: ['gateway'],
    digits: 2,
    target: { of: 'absolute', atMost: 0.2, text: '< 0.2 ms' },
    once: true,
    // After the connection rows: thousands of connections of one tenant, its route cached.
    measure: async (context) => {
      const text = await (await fetch(context.gatewayMetricsUrl)).text();
      return (histogramPercentileBound(text, 'resolve', 0.99) + histogramPercentileBound(text, 'admit', 0.99)) * 1000;
    },
  },
  {
    id: 'copy-out',
    label: () => 'COPY out through psql, MB/s',
    paths: ALL,
    digits: 0,
    target: { of: 'direct', atLeast: 0.9, text: '≥ 0.9 × direct' },
    measure: (context, path) => copyOut(path.env, context.copyData),
  },
  {
    id: 'copy-in',
    label: () => 'COPY in through psql, MB/s',
    paths: ALL,
    digits: 0,
    target: { of: 'direct', atLeast: 0.9, text: '≥ 0.9 × direct' },
    measure: (context, path) => copyIn(path.env, context.copyData, context.postgres),
  },
  {
    id: 'idle-rss',
    label: () => 'RSS of the proxy once started, before any session, MiB',
    paths: ['PgBouncer', 'gateway'],
    digits: 1,
    target: { of: 'absolute', atMost: 80, text: '≤ 80 MiB' },
    once: true,
    measure: async (context, path) => {
      const kib = context.rssAtStartKiB[path.name];
      if (kib === undefined) throw new Error(`${path.name}: no proxy process to measure`);
      return kib / 1024;
    },
  },
  {
    id: 'idle-memory',
    label: (settings) => `memory per idle TLS session (${settings.idleSessions.toLocaleString('en-US')} open), KiB`,
    // PgBouncer last, and once: it keeps its server connections pooled, holding PostgreSQL's slots.
    paths: ['gateway', 'PgBouncer'],
    digits: 1,
    target: { of: 'absolute', atMost: 64, text: '≤ 64 KB' },
    once: true,
    measure: async (context, path) => {
      const figures = await idleSessionMemory(path, { postgres: context.postgres }, context.settings.idleSessions, context.dir);
      const mib = (kib: number) => (kib / 1024).toFixed(1);
      context.note(
        `${path.name} RSS: ${mib(figures.rssKiB.before)} MiB before, ${mib(figures.rssKiB.with)} MiB with ${context.settings.idleSessions} idle sessions.`,
      );
      if (figures.leftOpen !== undefined && figures.leftOpen > 0) {
        context.note(
          `${path.name}: ${figures.leftOpen} backend sessions still open 10 s after the ${context.settings.idleSessions} idle clients left.`,
        );
      }
      return figures.kibPerSession;
    },
  },
  {
    id: 'pooled-idle-memory',
    label: (settings) =>
      `memory per idle TLS session through the gateway (${settings.pooledSessions.toLocaleString('en-US')} open; its backend PgBouncer in transaction mode), KiB`,
    paths: ['gateway'],
    digits: 1,
    target: { of: 'absolute', atMost: 64, text: '≤ 64 KB, every session opened' },
    once: true,
    measure: async (context, path) => {
      if (context.pooled === undefined) throw new Error('no pooled tenant was started');
      const figures = await idleSessionMemory(
        context.pooled.path,
        { backendPort: context.pooled.backendPort },
        context.settings.pooledSessions,
        context.dir,
      );
      const mib = (kib: number) => (kib / 1024).toFixed(1);
      context.note(
        `${path.name} RSS: ${mib(figures.rssKiB.before)} MiB before, ${mib(figures.rssKiB.with)} MiB with ${context.settings.pooledSessions} idle sessions to the pooled tenant.`,
      );
      if (figures.leftOpen !== undefined && figures.leftOpen > 0)
        context.note(`${path.name}: ${figures.leftOpen} connections to the pooled backend still open 10 s after the clients left.`);
      return figures.kibPerSession;
    },
  },
];

/**
 * The upper bound of the bucket holding quantile `q` of `tenantgate_phase_duration_seconds` for
 * `phase`, in seconds (Infinity when it falls past the last bucket).
 */
export function histogramPercentileBound(metrics: string, phase: string, q: number): number {
  const buckets = [...metrics.matchAll(/^tenantgate_phase_duration_seconds_bucket\{([^}]*)\} (\S+)$/gm)]
    .filter(([, labels]) => labels!.includes(`phase="${phase}"`))
    .map(([, labels, count]) => ({ le: Number(/le="([^"]+)"/.exec(labels!)![1]!.replace('+Inf', 'Infinity')), count: Number(count) }))
    .sort((a, b) => a.le - b.le);
  const total = buckets.at(-1)?.count ?? 0;
  if (total === 0) throw new Error(`no ${phase} phase observed`);
  return buckets.find((bucket) => bucket.count >= q * total)!.le;
}
