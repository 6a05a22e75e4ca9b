import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { startAdminServer, type AdminServer, type AdminServerOptions } from './admin.ts';
import { createLogger } from './logger.ts';
import { createMetrics } from './metrics.ts';

/** A logger whose lines are kept for assertions instead of cluttering the test output. */
function quietLogger(): { logger: AdminServerOptions['logger']; lines: () => Record<string, unknown>[] } {
  const chunks: string[] = [];
  const destination = new Writable({
    write(chunk: Buffer, _encoding, callback) {
      chunks.push(chunk.toString());
      callback();
    },
  });
  const lines = () =>
    chunks
      .join('')
      .split('\n')
      .filter((l) => l !== '')
      .map((l) => JSON.parse(l) as Record<string, unknown>);
  return { logger: createLogger({ level: 'info', destination }), lines };
}

async function start(t: TestContext, options: Partial<AdminServerOptions> = {}): Promise<AdminServer & { url: string }> {
  const server = await startAdminServer({
    listen: { host: '127.0.0.1', port: 0 },
    metrics: createMetrics().registry,
    readiness: () => true,
    logger: quietLogger().logger,
    ...options,
  });
  t.after(() => server.close());
  return Object.assign(server, { url: `http://127.0.0.1:${server.address.port}` });
}

test('GET /metrics serves the registry in the Prometheus text format', async (t) => {
  const metrics = createMetrics();
  metrics.connections.inc({ outcome: 'session' });
  const admin = await start(t, { metrics: metrics.registry });
  const res = await fetch(`${admin.url}/metrics`);
  assert.equal(res.status, 200);
  assert.equal(res.headers.get('content-type'), metrics.registry.contentType);
  assert.match(res.headers.get('content-type') ?? '', /^text\/plain; version=0\.0\.4/);
  const body = await res.text();
  assert.match(body, /^tenantgate_connections_total\{outcome="session"\} 1$/m);
  assert.match(body, /^# TYPE tenantgate_phase_duration_seconds histogram$/m);
});

test('GET /healthz answers 200 while the process runs, even when not ready', async (t) => {
  const admin = await start(t, { readiness: () => false });
  const res = await fetch(`${admin.url}/healthz`);
  assert.equal(res.status, 200);
  assert.equal(await res.text(), 'ok\n');
  assert.equal(res.headers.get('cache-control'), 'no-store');
});

test('GET /readyz follows readiness(): 200, then 503 once draining', async (t) => {
  let ready = true;
  const admin = await start(t, { readiness: () => ready });
  const before = await fetch(`${admin.url}/readyz`);
  assert.equal(before.status, 200);
  assert.equal(await before.text(), 'ready\n');
  ready = false;
  const after = await fetch(`${admin.url}/readyz?probe=nlb`);
  assert.equal(after.status, 503);
  assert.equal(await after.text(), 'not ready\n');
});

test('an asynchronous readiness check is awaited', async (t) => {
  const admin = await start(t, { readiness: async () => true });
  assert.equal((await fetch(`${admin.url}/readyz`)).status, 200);
});

test('a readiness check that throws means not ready, and is logged', async (t) => {
  const { logger, lines } = quietLogger();
  const admin = await start(t, { logger, readiness: () => Promise.reject(new Error('redis unreachable')) });
  assert.equal((await fetch(`${admin.url}/readyz`)).status, 503);
  const line = lines().find((l) => l.msg === 'readiness check failed');
  assert.equal((line?.err as { message?: string } | undefined)?.message, 'redis unreachable');
});

test('a readiness check that hangs means not ready after the timeout', async (t) => {
  const admin = await start(t, { readiness: () => new Promise<boolean>(() => {}), readinessTimeoutMs: 20 });
  assert.equal((await fetch(`${admin.url}/readyz`)).status, 503);
});

test('unknown paths are 404', async (t) => {
  const admin = await start(t);
  for (const path of ['/', '/metrics/extra', '/ready', '/docs']) {
    const res = await fetch(`${admin.url}${path}`);
    assert.equal(res.status, 404, path);
    await res.arrayBuffer();
  }
});

test('methods other than GET and HEAD are 405 with an Allow header', async (t) => {
  const admin = await start(t);
  for (const method of ['POST', 'PUT', 'DELETE']) {
    const res = await fetch(`${admin.url}/metrics`, { method });
    assert.equal(res.status, 405, method);
    assert.equal(res.headers.get('allow'), 'GET, HEAD');
    await res.arrayBuffer();
  }
});

test('HEAD answers with the headers of GET and no body', async (t) => {
  const admin = await start(t);
  const res = await fetch(`${admin.url}/healthz`, { method: 'HEAD' });
  assert.equal(res.status, 200);
  assert.equal(res.headers.get('content-length'), '3');
  assert.equal(await res.text(), '');
});

test('a failing metrics source is a 500, logged once', async (t) => {
  const { logger, lines } = quietLogger();
  const metrics = { contentType: 'text/plain', metrics: () => Promise.reject(new Error('collector broke')) };
  const admin = await start(t, { logger, metrics });
  assert.equal((await fetch(`${admin.url}/metrics`)).status, 500);
  assert.equal(lines().filter((l) => l.msg === 'admin request failed').length, 1);
});

test('close() ends keep-alive connections and frees the port; it may be called twice', async (t) => {
  const admin = await start(t);
  await (await fetch(`${admin.url}/healthz`)).text();
  await admin.close();
  await admin.close();
  await assert.rejects(fetch(`${admin.url}/healthz`));
});

test('a port in use rejects the start', async (t) => {
  const first = await start(t);
  await assert.rejects(
    startAdminServer({
      listen: { host: '127.0.0.1', port: first.address.port },
      metrics: createMetrics().registry,
      readiness: () => true,
      logger: quietLogger().logger,
    }),
    { code: 'EADDRINUSE' },
  );
});
