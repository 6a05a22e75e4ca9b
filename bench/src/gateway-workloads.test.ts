// The figures the bench reads from the gateway's own metrics: the bucket that holds a phase's
// percentile in the Prometheus text of the phase histogram.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { histogramPercentileBound } from './gateway-workloads.ts';

const METRICS = [
  'tenantgate_phase_duration_seconds_bucket{le="0.0001",phase="resolve"} 980',
  'tenantgate_phase_duration_seconds_bucket{le="0.00025",phase="resolve"} 995',
  'tenantgate_phase_duration_seconds_bucket{le="0.0005",phase="resolve"} 1000',
  'tenantgate_phase_duration_seconds_bucket{le="+Inf",phase="resolve"} 1000',
  'tenantgate_phase_duration_seconds_bucket{le="0.0001",phase="admit"} 1000',
  'tenantgate_phase_duration_seconds_bucket{le="+Inf",phase="admit"} 1000',
  'tenantgate_phase_duration_seconds_bucket{le="0.0001",phase="tls"} 0',
  'tenantgate_phase_duration_seconds_bucket{le="+Inf",phase="tls"} 0',
].join('\n');

test('the p99 bound is the first bucket holding 99 % of the observations', () => {
  assert.equal(histogramPercentileBound(METRICS, 'resolve', 0.99), 0.00025);
  assert.equal(histogramPercentileBound(METRICS, 'resolve', 0.5), 0.0001);
  assert.equal(histogramPercentileBound(METRICS, 'admit', 0.99), 0.0001);
  assert.throws(() => histogramPercentileBound(METRICS, 'tls', 0.99), /no tls phase observed/);
});
