import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createMetrics, MetricName } from './metrics.ts';

test('every metric is registered under its name, with the tenantgate_ prefix', async () => {
  const metrics = createMetrics({ countTenants: async () => 3, pendingInvalidations: async () => 1, pendingJobs: async () => ({}) });
  const names = (await metrics.registry.getMetricsAsJSON()).map((m) => m.name).sort();
  assert.deepEqual(names, Object.values(MetricName).sort());
  for (const name of names) assert.match(name, /^tenantgate_/);
});

test('the gauges are read at scrape time; a store that cannot answer gives NaN, not a failed scrape', async () => {
  let tenants = 2;
  const healthy = createMetrics({ countTenants: async () => tenants, pendingInvalidations: async () => 0, pendingJobs: async () => ({}) });
  assert.match(await healthy.registry.metrics(), /^tenantgate_tenants 2$/m);
  tenants = 5;
  assert.match(await healthy.registry.metrics(), /^tenantgate_tenants 5$/m);
  const broken = createMetrics({
    countTenants: () => Promise.reject(new Error('down')),
    pendingInvalidations: async () => 0,
    pendingJobs: async () => ({}),
  });
  // prom-client writes NaN as "Nan"; Prometheus parses either.
  assert.match(await broken.registry.metrics(), /^tenantgate_tenants nan$/im);
});

test('request durations are labelled by method, route template and status', async () => {
  const metrics = createMetrics({ countTenants: async () => 0, pendingInvalidations: async () => 0, pendingJobs: async () => ({}) });
  metrics.httpRequestDuration.observe({ method: 'GET', route: '/v1/routes/:id', status: '200' }, 0.003);
  assert.match(
    await metrics.registry.metrics(),
    /^tenantgate_http_request_duration_seconds_bucket\{le="0.005",method="GET",route="\/v1\/routes\/:id",status="200"\} 1$/m,
  );
});
