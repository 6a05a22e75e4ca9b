// The metrics catalogue (docs/metrics.md), the alert rules (deploy/prometheus) and the dashboard
// (deploy/grafana) against what the apps export: a metric without its line in the catalogue, a
// line for a metric nobody exports, or a rule or panel that queries one fails here. The rules
// are checked and unit-tested with promtool (Debian's `prometheus` package; .ci/run installs it),
// and every panel's query is checked by promtool as a recording rule.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createMetrics } from '@tenantgate/gateway';
import { createControlPlaneMetrics } from '@tenantgate/control-plane';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const read = (path: string): string => readFileSync(join(ROOT, path), 'utf8');

async function exported(): Promise<Map<string, string>> {
  const gateway = await createMetrics().registry.getMetricsAsJSON();
  const controlPlane = await createControlPlaneMetrics({
    countTenants: async () => 0,
    pendingInvalidations: async () => 0,
    pendingJobs: async () => ({}),
  }).registry.getMetricsAsJSON();
  return new Map([...gateway, ...controlPlane].map((metric) => [metric.name, String(metric.type)]));
}

/** The metric names a PromQL text (or any text) uses; a histogram's series map to its name. */
function metricNames(text: string): Set<string> {
  return new Set([...text.matchAll(/\btenantgate_[a-z0-9_]+/g)].map(([name]) => name.replace(/_(bucket|count|sum)$/, '')));
}

function promtool(...args: string[]): string {
  try {
    return execFileSync('promtool', args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  } catch (error) {
    const { code, stdout, stderr } = error as { code?: string; stdout?: string; stderr?: string };
    if (code === 'ENOENT') assert.fail('promtool is not installed (Debian: apt-get install prometheus)');
    assert.fail(`promtool ${args.join(' ')} failed:\n${stdout ?? ''}${stderr ?? ''}`);
  }
}

test('docs/metrics.md has a line for every metric the apps export, and none for another', async () => {
  const names = await exported();
  const documented = new Set(
    [...read('docs/metrics.md').matchAll(/^\| `(tenantgate_[a-z0-9_]+)` \| (\w+) \|/gm)].map(([, name, type]) => `${name} ${type}`),
  );
  const expected = new Set([...names].map(([name, type]) => `${name} ${type}`));
  assert.deepEqual(
    [...expected].filter((line) => !documented.has(line)),
    [],
    'exported, but not in docs/metrics.md (name and type)',
  );
  assert.deepEqual(
    [...documented].filter((line) => !expected.has(line)),
    [],
    'in docs/metrics.md, but not exported',
  );
});

test('the alert rules pass promtool check and their unit tests, and query only exported metrics', async () => {
  const rules = join(ROOT, 'deploy/prometheus/alerts.yml');
  assert.match(promtool('check', 'rules', rules), /SUCCESS: \d+ rules found/);
  assert.match(promtool('test', 'rules', join(ROOT, 'deploy/prometheus/alerts.test.yml')), /SUCCESS/);
  const names = await exported();
  const unknown = [...metricNames(read('deploy/prometheus/alerts.yml'))].filter((name) => !names.has(name));
  assert.deepEqual(unknown, []);
  // Every rule has a unit test that expects it to fire.
  const alerts = [...read('deploy/prometheus/alerts.yml').matchAll(/- alert: (\w+)/g)].map(([, name]) => name);
  const fired = read('deploy/prometheus/alerts.test.yml');
  for (const alert of alerts)
    assert.match(fired, new RegExp(`alertname: ${alert}\\n\\s+exp_alerts:\\n\\s+- exp_labels`), `${alert} has no test where it fires`);
  // And a section in the operator's guide saying what it means and what to do.
  const guide = read('docs/operations.md');
  for (const alert of alerts) assert.match(guide, new RegExp(`^### ${alert}$`, 'm'), `docs/operations.md has no section for ${alert}`);
});

test("the dashboard's panels query only exported metrics, in PromQL that promtool accepts, and cover the fleet's main signals", async () => {
  const dashboard = JSON.parse(read('deploy/grafana/tenantgate.json')) as {
    uid: string;
    panels: { id: number; title: string; targets: { expr: string; refId: string }[] }[];
  };
  const names = await exported();
  const exprs = dashboard.panels.flatMap((panel) => {
    assert.ok(panel.targets.length > 0, `${panel.title} has no query`);
    return panel.targets.map((target) => target.expr);
  });
  assert.equal(new Set(dashboard.panels.map((panel) => panel.id)).size, dashboard.panels.length, 'panel ids are unique');
  const used = metricNames(exprs.join('\n'));
  assert.deepEqual(
    [...used].filter((name) => !names.has(name)),
    [],
    'panels query metrics nobody exports',
  );
  for (const name of [
    'tenantgate_connections_total',
    'tenantgate_phase_duration_seconds',
    'tenantgate_cache_requests_total',
    'tenantgate_refusals_total',
    'tenantgate_bytes_total',
    'tenantgate_cancel_requests_total',
    'tenantgate_active_sessions',
  ]) {
    assert.ok(used.has(name), `no panel shows ${name}`);
  }
  // Grafana's $__rate_interval is not PromQL: promtool checks each query with 5m in its place.
  const dir = mkdtempSync(join(tmpdir(), 'tg-dashboard-'));
  try {
    const file = join(dir, 'panels.yml');
    const rules = exprs.map(
      (expr, i) => `      - record: panel_query_${i}\n        expr: ${JSON.stringify(expr.replaceAll('$__rate_interval', '5m'))}`,
    );
    writeFileSync(file, `groups:\n  - name: dashboard\n    rules:\n${rules.join('\n')}\n`);
    assert.match(promtool('check', 'rules', file), new RegExp(`SUCCESS: ${exprs.length} rules found`));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
