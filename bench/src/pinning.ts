// BENCH_PIN=1: the proxy as if on a host of its own. The bench process (and so everything it
// starts: PostgreSQL, pgbench, psql) runs on CPU 0, and each proxy, with every thread and every
// process it forked, on CPU 1, so a proxy never waits for the CPU behind the load it serves and
// its ratios measure what it costs rather than who got the CPU.
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { descendantPids } from './processes.ts';

export const LOAD_CPU = 0;
export const PROXY_CPU = 1;

/** Throws unless this machine has the two CPUs and `taskset` (util-linux) that pinning needs. */
export function checkPinning(): void {
  if (availableParallelism() < 2) throw new Error(`BENCH_PIN=1 needs 2 CPUs; this process may use ${availableParallelism()}`);
  try {
    execFileSync('taskset', ['-p', String(process.pid)], { stdio: 'ignore' });
  } catch {
    throw new Error('BENCH_PIN=1 needs taskset (Debian: util-linux)');
  }
}

/** Every thread of `pid` and of each process below it, on `cpu` (processes it forks later inherit it). */
export function pinProcessTree(pid: number, cpu: number): void {
  for (const task of [pid, ...descendantPids(pid)]) execFileSync('taskset', ['-a', '-cp', String(cpu), String(task)], { stdio: 'ignore' });
}

/** The CPUs a process may run on, as taskset prints them ("0", "0-1"). */
export function allowedCpus(pid: number): string {
  return /Cpus_allowed_list:\s*(\S+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? '?';
}
