// The gateway comparison as markdown: one row per workload with the figure of each path, the
// gateway's ratios to direct PostgreSQL and to PgBouncer, the target and whether the run
// met it; then the command, the conditions and anything that went wrong.
import type { BenchRow } from './main.ts';
import type { GatewayBenchResult, PathFigures } from './gateway.ts';
import { PATHS } from './gateway-stack.ts';
import { WORKLOADS, type Target } from './gateway-workloads.ts';

export function comparisonRows(result: GatewayBenchResult): BenchRow[] {
  return WORKLOADS.filter((workload) => result.figures.has(workload.id)).map((workload) => {
    const figures = result.figures.get(workload.id) ?? {};
    const row: BenchRow = { workload: workload.label(result.options) };
    for (const path of PATHS) {
      const value = figures[path];
      if (value !== undefined) row[path] = value instanceof Error ? 'error' : round(value, workload.digits);
    }
    for (const other of ['direct', 'PgBouncer', 'relay'] as const) {
      const ratio = gatewayRatio(figures, other);
      if (ratio !== undefined) row[`gateway/${other}`] = round(ratio, 2);
    }
    row.target = workload.target.text;
    row.met = verdict(figures, workload.target);
    return row;
  });
}

/** The table's columns in reading order: the paths, then the gateway's ratios, then the target. */
export const COMPARISON_COLUMNS: readonly string[] = [
  'workload',
  ...PATHS,
  'gateway/direct',
  'gateway/PgBouncer',
  'gateway/relay',
  'target',
  'met',
];

function gatewayRatio(figures: PathFigures, of: 'direct' | 'PgBouncer' | 'relay'): number | undefined {
  const gateway = figures.gateway;
  const other = figures[of];
  if (typeof gateway !== 'number' || typeof other !== 'number' || other === 0) return undefined;
  return gateway / other;
}

function verdict(figures: PathFigures, target: Target): string {
  if (target.of === 'none') return '—';
  const value = target.of === 'absolute' ? figures.gateway : gatewayRatio(figures, target.of);
  if (typeof value !== 'number') return '?';
  const met = (target.atLeast === undefined || value >= target.atLeast) && (target.atMost === undefined || value <= target.atMost);
  return met ? 'yes' : 'no';
}

function round(value: number, digits: number): number {
  const scale = 10 ** digits;
  return Math.round(value * scale) / scale;
}

/** The lines under the table: how to repeat the run, under what conditions, what went wrong. */
export function reportNotes(result: GatewayBenchResult, env: NodeJS.ProcessEnv = process.env): string {
  const settings = Object.entries(env)
    .filter(([name]) => name.startsWith('BENCH_'))
    .map(([name, value]) => `${name}=${value} `)
    .join('');
  const errors = WORKLOADS.flatMap((workload) =>
    Object.entries(result.figures.get(workload.id) ?? {})
      .filter((entry): entry is [string, Error] => entry[1] instanceof Error)
      .map(([path, error]) => `${workload.id} via ${path} failed: ${error.message}`),
  );
  return [
    '```',
    `$ ${settings}npm run bench -- gateway`,
    '```',
    '',
    `Conditions: ${result.conditions}.`,
    ...(errors.length + result.notes.length === 0
      ? []
      : ['', ...[...errors, ...result.notes].map((line) => `- ${line.replaceAll('\n', '\n  ')}`)]),
  ].join('\n');
}
