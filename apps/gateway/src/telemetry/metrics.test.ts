import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  CacheResult,
  CacheTier,
  CancelResult,
  ConnectionOutcome,
  controlPlaneStatus,
  createMetrics,
  Direction,
  METRIC_NAMES,
  Phase,
} from './metrics.ts';

/** The metric names dashboards and alarms use: a public contract. */
const CONTRACT_METRICS = [
  'tenantgate_connections_total',
  'tenantgate_active_sessions',
  'tenantgate_phase_duration_seconds',
  'tenantgate_cache_requests_total',
  'tenantgate_control_plane_request_duration_seconds',
  'tenantgate_bytes_total',
  'tenantgate_refusals_total',
  'tenantgate_cancel_requests_total',
  'tenantgate_fleet_limits_lost',
  'tenantgate_certificate_expiry_seconds',
  'tenantgate_draining',
];

test("the exported names are the contract's names", () => {
  assert.deepEqual([...METRIC_NAMES].sort(), [...CONTRACT_METRICS].sort());
});

test('every metric renders with the tenantgate_ prefix, with its type and help', async () => {
  const text = await createMetrics().registry.metrics();
  for (const name of METRIC_NAMES) {
    assert.match(text, new RegExp(`^# HELP ${name} \\S`, 'm'), name);
    assert.match(text, new RegExp(`^# TYPE ${name} (counter|gauge|histogram)$`, 'm'), name);
  }
  const names = [...text.matchAll(/^# TYPE (\S+)/gm)].map((m) => m[1]);
  assert.ok(names.length > METRIC_NAMES.length, 'default process metrics are missing');
  for (const name of names) assert.ok(name.startsWith('tenantgate_'), name);
  assert.ok(names.includes('tenantgate_process_cpu_user_seconds_total'));
  assert.ok(names.includes('tenantgate_nodejs_eventloop_lag_seconds'));
});

test('known label values are exported at zero before any event', async () => {
  const text = await createMetrics().registry.metrics();
  for (const outcome of Object.values(ConnectionOutcome)) {
    assert.match(text, new RegExp(`^tenantgate_connections_total\\{outcome="${outcome}"\\} 0$`, 'm'));
  }
  for (const phase of Object.values(Phase)) {
    assert.match(text, new RegExp(`^tenantgate_phase_duration_seconds_count\\{phase="${phase}"\\} 0$`, 'm'));
  }
  assert.match(text, /^tenantgate_cache_requests_total\{tier="redis",result="stale"\} 0$/m);
  assert.match(text, /^tenantgate_bytes_total\{direction="backend_to_client"\} 0$/m);
  assert.match(text, /^tenantgate_refusals_total\{sqlstate="28P01"\} 0$/m);
  assert.match(text, /^tenantgate_cancel_requests_total\{result="unknown_key"\} 0$/m);
  assert.match(text, /^tenantgate_active_sessions 0$/m);
});

test('recorded events show up in the rendered text', async () => {
  const m = createMetrics();
  m.connections.inc({ outcome: ConnectionOutcome.Session });
  m.activeSessions.inc();
  m.activeSessions.inc();
  m.activeSessions.dec();
  m.phaseDuration.observe({ phase: Phase.Resolve }, 0.00015);
  m.cacheRequests.inc({ tier: CacheTier.Memory, result: CacheResult.Hit });
  m.controlPlaneRequestDuration.observe({ status: controlPlaneStatus(200) }, 0.004);
  m.controlPlaneRequestDuration.observe({ status: controlPlaneStatus(undefined) }, 2);
  m.bytes.inc({ direction: Direction.ClientToBackend }, 8192);
  m.refusals.inc({ sqlstate: '53300' });
  m.cancelRequests.inc({ result: CancelResult.Forwarded });
  const text = await m.registry.metrics();
  assert.match(text, /^tenantgate_connections_total\{outcome="session"\} 1$/m);
  assert.match(text, /^tenantgate_active_sessions 1$/m);
  assert.match(text, /^tenantgate_phase_duration_seconds_bucket\{le="0.0001",phase="resolve"\} 0$/m);
  assert.match(text, /^tenantgate_phase_duration_seconds_bucket\{le="0.00025",phase="resolve"\} 1$/m);
  assert.match(text, /^tenantgate_cache_requests_total\{tier="memory",result="hit"\} 1$/m);
  assert.match(text, /^tenantgate_control_plane_request_duration_seconds_count\{status="200"\} 1$/m);
  assert.match(text, /^tenantgate_control_plane_request_duration_seconds_count\{status="error"\} 1$/m);
  assert.match(text, /^tenantgate_bytes_total\{direction="client_to_backend"\} 8192$/m);
  assert.match(text, /^tenantgate_refusals_total\{sqlstate="53300"\} 1$/m);
  assert.match(text, /^tenantgate_cancel_requests_total\{result="forwarded"\} 1$/m);
});

test('a phase timer observes the elapsed seconds', async () => {
  const m = createMetrics();
  const end = m.phaseDuration.startTimer({ phase: Phase.Tls });
  const seconds = end();
  assert.ok(Number.isFinite(seconds) && seconds >= 0);
  assert.match(await m.registry.metrics(), /^tenantgate_phase_duration_seconds_count\{phase="tls"\} 1$/m);
});

test('each createMetrics has its own registry', async () => {
  const a = createMetrics();
  const b = createMetrics();
  a.refusals.inc({ sqlstate: '08004' });
  assert.match(await a.registry.metrics(), /^tenantgate_refusals_total\{sqlstate="08004"\} 1$/m);
  assert.match(await b.registry.metrics(), /^tenantgate_refusals_total\{sqlstate="08004"\} 0$/m);
});

test('no metric has a tenant label', () => {
  const { registry } = createMetrics();
  for (const name of METRIC_NAMES) {
    const metric = registry.getSingleMetric(name) as unknown as { labelNames?: readonly string[] } | undefined;
    assert.ok(metric !== undefined, name);
    assert.equal((metric.labelNames ?? []).includes('tenant'), false, name);
  }
});
