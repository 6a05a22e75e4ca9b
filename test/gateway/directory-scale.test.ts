// A directory of many tenants (docs/architecture.md, step 6): the real control plane (PGlite
// store, over HTTP) holds DIRECTORY_TENANTS tenants (10,000 in `npm test`, 100,000 in
// `npm run test:resilience`) created through its API, 16 requests at a time; lists them page by
// page; and the gateway's directory resolves a sample of 1,000 distinct ids with a memory tier
// that stays within its entry and byte bounds, while 50 lookups of one cold tenant make one
// request. The times are printed, not asserted.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ControlPlaneDirectory, createLogger, createMetrics, MetricName } from '@tenantgate/gateway';
import { createScramSecret } from '@tenantgate/wire';
import { call, GATEWAY_TOKEN, startTestControlPlane } from '../control-plane/harness.ts';

const TENANTS = Number(process.env.DIRECTORY_TENANTS ?? 10_000);
const SAMPLE = 1_000;
const CONCURRENCY = 16;
const MEMORY = { memoryMaxEntries: 500, memoryMaxBytes: 256 * 1024 };

const idOf = (i: number): string => `tenant-${String(i).padStart(6, '0')}`;

test(`${TENANTS.toLocaleString('en')} tenants: created through the API, listed page by page, resolved within the memory bounds`, async (t) => {
  const controlPlane = await startTestControlPlane(t);
  const scramSecret = await createScramSecret('app-password');

  let created = 0;
  const createStarted = performance.now();
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async () => {
      while (created < TENANTS) {
        const id = idOf(created++);
        const reply = await call(controlPlane.url, 'POST', '/v1/tenants', {
          json: { id, backend: { host: '10.0.0.1', port: 5432 }, roles: [{ name: 'app', scramSecret }] },
        });
        assert.equal(reply.status, 201, `${id}: ${JSON.stringify(reply.body)}`);
      }
    }),
  );
  const createSeconds = (performance.now() - createStarted) / 1000;
  t.diagnostic(`created ${TENANTS} tenants in ${createSeconds.toFixed(1)} s (${Math.round(TENANTS / createSeconds)}/s)`);

  const listStarted = performance.now();
  const pageMs: number[] = [];
  let listed = 0;
  let last = '';
  for (let cursor: string | undefined; ;) {
    const started = performance.now();
    const page = await call(controlPlane.url, 'GET', `/v1/tenants?limit=100${cursor === undefined ? '' : `&cursor=${cursor}`}`);
    pageMs.push(performance.now() - started);
    assert.equal(page.status, 200);
    for (const item of page.body.items as { id: string }[]) {
      assert.ok(item.id > last, `${item.id} after ${last}: in order, none twice`);
      last = item.id;
      listed++;
    }
    if (page.body.nextCursor === null || page.body.nextCursor === undefined) break;
    cursor = page.body.nextCursor as string;
  }
  assert.equal(listed, TENANTS);
  const average = (values: number[]) => (values.reduce((a, b) => a + b, 0) / values.length).toFixed(2);
  t.diagnostic(
    `listed ${listed} in ${pageMs.length} pages in ${((performance.now() - listStarted) / 1000).toFixed(1)} s; ` +
      `first 10 pages ${average(pageMs.slice(0, 10))} ms each, last 10 ${average(pageMs.slice(-10))} ms`,
  );

  const metrics = createMetrics();
  const directory = new ControlPlaneDirectory({
    controlPlaneUrl: controlPlane.url,
    controlPlaneToken: GATEWAY_TOKEN,
    metrics,
    logger: createLogger({ level: 'silent' }),
    tuning: MEMORY,
  });
  t.after(() => directory.close());
  const requests = async (): Promise<number> => {
    const metric = await metrics.registry.getSingleMetric(MetricName.ControlPlaneRequestDuration)?.get();
    const counts = metric?.values.filter((v) => (v as { metricName?: string }).metricName?.endsWith('_count')) ?? [];
    return counts.reduce((sum, v) => sum + v.value, 0);
  };
  // 50 clients of one cold tenant at once: one request.
  const cold = idOf(TENANTS - 1);
  const answers = await Promise.all(Array.from({ length: 50 }, () => directory.resolve(cold)));
  assert.ok(answers.every((answer) => answer.kind === 'found'));
  assert.equal(await requests(), 1, 'concurrent misses share one request');

  const stride = Math.max(1, Math.floor(TENANTS / SAMPLE));
  const sample = Array.from({ length: Math.min(SAMPLE, TENANTS) }, (_, i) => idOf(i * stride));
  const resolveStarted = performance.now();
  let next = 0;
  let largest = { entries: 0, bytes: 0 };
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async () => {
      while (next < sample.length) {
        const id = sample[next++]!;
        const answer = await directory.resolve(id);
        assert.equal(answer.kind, 'found', id);
        const { entries, bytes } = directory.memory;
        largest = { entries: Math.max(largest.entries, entries), bytes: Math.max(largest.bytes, bytes) };
      }
    }),
  );
  t.diagnostic(
    `resolved ${sample.length} distinct tenants in ${((performance.now() - resolveStarted) / 1000).toFixed(1)} s; ` +
      `memory tier at most ${largest.entries} entries, ${largest.bytes} bytes (bounds ${MEMORY.memoryMaxEntries}, ${MEMORY.memoryMaxBytes})`,
  );
  assert.ok(largest.entries <= MEMORY.memoryMaxEntries, `${largest.entries} entries`);
  assert.ok(largest.bytes <= MEMORY.memoryMaxBytes, `${largest.bytes} bytes`);
  assert.ok(largest.entries >= Math.min(sample.length, 100), 'the tier was used');
});
