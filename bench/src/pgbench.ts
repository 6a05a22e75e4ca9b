// pgbench as the load: one run of a workload against one path, and the figures pgbench reports.
// @see https://www.postgresql.org/docs/15/pgbench.html
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
