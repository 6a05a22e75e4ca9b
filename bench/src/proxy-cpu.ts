// The proxy's CPU per unit of work: user + system time of its process, read from
// /proc/<pid>/stat before and after a pgbench run, divided by the transactions (or new
// connections) the run made. Independent of how much CPU pgbench and PostgreSQL took beside it,
// which is what decides the proxy's cost on hosts of its own.
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { descendantPids } from './processes.ts';

/** Clock ticks per second of /proc's times (USER_HZ; 100 on Linux). */
const TICKS_PER_SECOND = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;

/** CPU seconds (user + system) the process has used so far. */
export function processCpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  // The command name (field 2) may hold spaces and parentheses: count fields after its last ')'.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // utime and stime are fields 14 and 15 of the whole line: 12 and 13 after the name.
  return (Number(fields[11]) + Number(fields[12])) / TICKS_PER_SECOND;
}

/** CPU seconds of the process and every process below it (a gateway's workers). */
export function processTreeCpuSeconds(pid: number): number {
  return [pid, ...descendantPids(pid)].reduce((sum, task) => sum + processCpuSeconds(task), 0);
}

/** Microseconds of the process tree's CPU per unit, over what `run` made (`run` returns the units). */
export async function cpuMicrosecondsPerUnit(pid: number, run: () => Promise<number>): Promise<number> {
  const before = processTreeCpuSeconds(pid);
  const units = await run();
  const seconds = processTreeCpuSeconds(pid) - before;
  if (units <= 0) throw new Error('the run made no transactions');
  return (seconds * 1e6) / units;
}
