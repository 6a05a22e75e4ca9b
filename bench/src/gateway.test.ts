// A smoke run of the gateway comparison (`npm run bench -- gateway`) at its smallest: every
// workload yields a figure on every path, positive but for the memory per idle session, which at
// 10 sessions may fall inside memory the process already had (a delta of 0). No thresholds:
// timings taken on a machine shared with other tests say nothing; the figures come from
// `npm run bench` (docs/benchmarks.md).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { optionsFromEnvironment, runGatewayBench } from './gateway.ts';
import { WORKLOADS } from './gateway-workloads.ts';

test('direct, PgBouncer, the relay and the gateway each yield a figure for every workload', { timeout: 240_000 }, async () => {
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
      assert.ok(typeof figure === 'number' && Number.isFinite(figure), `${workload.id} via ${path}: ${figure}`);
      // A growth of RSS over a few sessions may be 0 pages, or less after a collection.
      if (!workload.id.endsWith('idle-memory')) assert.ok(figure > 0, `${workload.id} via ${path}: ${figure}`);
    }
  }
});
