// pgbench as the load: one run of a workload against one path, and the figures pgbench reports.
// @see https://www.postgresql.org/docs/15/pgbench.html
import { readdir, readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { runCommand } from './processes.ts';

export const PGBENCH = process.env.BENCH_PGBENCH ?? 'pgbench';

export interface PgbenchFigures {
  /** Transactions per second; with -C every transaction is a new connection. */
  readonly tps: number;
  /** Average latency in milliseconds. */
  readonly latencyMs: number;
  readonly transactions: number;
}

/** Runs pgbench with `args` and returns its figures; throws with its output when it failed. */
export async function pgbench(env: NodeJS.ProcessEnv, args: readonly string[], seconds: number): Promise<PgbenchFigures> {
  const result = await runCommand(PGBENCH, args, { env, timeoutMs: (seconds + 60) * 1000 });
  const output = `${result.stdout}\n${result.stderr}`.trim();
  if (result.timedOut) throw new Error(`pgbench ${args.join(' ')} hung: killed after ${seconds + 60} s\n${lastLines(output)}`);
  if (result.code !== 0)
    throw new Error(`pgbench ${args.join(' ')} failed (${result.signal ?? `exit code ${result.code}`})\n${lastLines(output)}`);
  return parsePgbenchOutput(result.stdout);
}

/**
 * pgbench with a per-transaction log (`-l`) in `dir`: every transaction's latency in
 * milliseconds. With -C the log leaves out the time to connect; this is for queries on open
 * sessions.
 */
export async function pgbenchLatencies(env: NodeJS.ProcessEnv, args: readonly string[], seconds: number, dir: string): Promise<number[]> {
  const prefix = `latency-${process.hrtime.bigint()}`;
  await pgbench(env, [...args, '-l', `--log-prefix=${join(dir, prefix)}`], seconds);
  const files = (await readdir(dir)).filter((name) => name.startsWith(`${prefix}.`));
  const latencies: number[] = [];
  for (const file of files) {
    // client_id transaction_no time script_no time_epoch time_us: `time` is the latency in µs.
    for (const line of (await readFile(join(dir, file), 'utf8')).split('\n')) {
      const micros = line.split(' ')[2];
      if (micros !== undefined) latencies.push(Number(micros) / 1000);
    }
    await rm(join(dir, file));
  }
  if (latencies.length === 0) throw new Error(`pgbench ${args.join(' ')} logged no transactions`);
  return latencies;
}

/** The nearest-rank percentile `p` (0 to 100) of `values`. */
export function percentile(values: readonly number[], p: number): number {
  if (values.length === 0) throw new Error('no values');
  const sorted = values.toSorted((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))]!;
}

/** The summary pgbench 15 prints at the end of a run. */
export function parsePgbenchOutput(stdout: string): PgbenchFigures {
  const number = (pattern: RegExp, what: string): number => {
    const match = pattern.exec(stdout);
    if (match === null) throw new Error(`pgbench printed no ${what}:\n${lastLines(stdout)}`);
    return Number(match[1]);
  };
  const failed = /^number of failed transactions: (\d+)/m.exec(stdout);
  if (failed !== null && Number(failed[1]) > 0) throw new Error(`pgbench: ${failed[1]} failed transactions\n${lastLines(stdout)}`);
  return {
    tps: number(/^tps = ([0-9.]+)/m, 'tps'),
    latencyMs: number(/^latency average = ([0-9.]+) ms/m, 'latency average'),
    transactions: number(/^number of transactions actually processed: (\d+)/m, 'transaction count'),
  };
}

function lastLines(text: string, count = 15): string {
  return text.trimEnd().split('\n').slice(-count).join('\n');
}
