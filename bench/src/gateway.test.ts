// A smoke run of the gateway comparison (`npm run bench -- gateway`) at its smallest: every
// workload yields a positive figure on every path. No thresholds: timings taken on a machine
// shared with other tests say nothing; the figures come from `npm run bench` (docs/benchmarks.md).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { optionsFromEnvironment, runGatewayBench } from './gateway.ts';
import { WORKLOADS } from './gateway-workloads.ts';

test('direct, PgBouncer and the gateway each yield a positive figure for every workload', { timeout: 240_000 }, async () => {
  const options = {
    ...optionsFromEnvironment({}),
    seconds: 1,
    warmupSeconds: 0,
    idleSessions: 10,
    pooledSessions: 10,
    copyMegabytes: 1,
    scale: 1,
  };
  const result = await runGatewayBench(options);
  for (const workload of WORKLOADS) {
    for (const path of workload.paths) {
      const figure = result.figures.get(workload.id)?.[path];
      if (figure instanceof Error) assert.fail(`${workload.id} via ${path}: ${figure.message}`);
      assert.ok(typeof figure === 'number' && figure > 0, `${workload.id} via ${path}: ${figure}`);
    }
  }
});
