import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { connect } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { startAdminServer, type AdminServer, type AdminServerOptions } from './admin.ts';
import { quietLogger } from '../testing/quiet-logger.ts';
import { createMetrics } from '../telemetry/index.ts';
import { localV2, proxyV1, proxyV2, rawV2, tlv } from '../testing/proxy-header.ts';

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
  assert.deepEqual(await before.json(), { status: 'ready' });
  ready = false;
  const after = await fetch(`${admin.url}/readyz?probe=nlb`);
  assert.equal(after.status, 503);
  assert.equal(after.headers.get('content-type'), 'application/json; charset=utf-8');
  assert.equal(((await after.json()) as { status: string }).status, 'not ready');
});

test('GET /readyz gives the reasons readiness() names, with the variable to fix', async (t) => {
  const reasons = [
    { reason: 'the control plane refuses GATEWAY_CONTROL_PLANE_TOKEN (HTTP 401)', variable: 'GATEWAY_CONTROL_PLANE_TOKEN' as const },
  ];
  const admin = await start(t, { readiness: () => ({ ready: false, reasons }) });
  const res = await fetch(`${admin.url}/readyz`);
  assert.equal(res.status, 503);
  assert.deepEqual(await res.json(), { status: 'not ready', reasons });
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

// ---------------------------------------------------------------------------------------------
// PROXY protocol headers before the request (the NLB's health checks, with proxy protocol on)

const LB_CLIENT = { address: '198.51.100.23', port: 50123 };
const ADMIN = { address: '192.0.2.10', port: 8080 };

function request(path: string, close = true): Buffer {
  return Buffer.from(`GET ${path} HTTP/1.1\r\nHost: gateway\r\n${close ? 'Connection: close\r\n' : ''}\r\n`, 'latin1');
}

/** Writes `chunks` as separate TCP segments and returns everything received until the server closes. */
async function exchange(port: number, chunks: readonly Buffer[]): Promise<string> {
  const socket = connect({ host: '127.0.0.1', port });
  socket.setNoDelay(true);
  await once(socket, 'connect');
  const received: Buffer[] = [];
  socket.on('data', (chunk: Buffer) => received.push(chunk));
  socket.on('error', () => undefined);
  const closed = once(socket, 'close');
  for (const chunk of chunks) {
    socket.write(chunk);
    await sleep(1);
  }
  await closed;
  return Buffer.concat(received).toString('latin1');
}

/** The status line and body of each response in `text`. */
function responses(text: string): { status: string; body: string }[] {
  return [...text.matchAll(/HTTP\/1\.1 (\d{3}) [^\r]*\r\n[\s\S]*?\r\n\r\n([^\r\n]*\n)/g)].map((m) => ({ status: m[1], body: m[2] }));
}

test("PROXY optional: a v2 header in the request's segment, then keep-alive requests, are served", async (t) => {
  const admin = await start(t, { proxyProtocol: 'optional', readiness: () => false });
  const text = await exchange(admin.address.port, [
    Buffer.concat([proxyV2(LB_CLIENT, ADMIN), request('/healthz', false), request('/readyz')]),
  ]);
  assert.deepEqual(responses(text), [
    { status: '200', body: 'ok\n' },
    { status: '503', body: '{"status":"not ready","reasons":[{"reason":"the gateway is not serving (starting or draining)"}]}\n' },
  ]);
});

test('PROXY optional: a header split across segments, a v1 header, LOCAL, and no header at all', async (t) => {
  const admin = await start(t, { proxyProtocol: 'optional' });
  const split = [...proxyV2(LB_CLIENT, ADMIN, [tlv(0xea, Buffer.from('\x01vpce-0123', 'latin1'))])].map((byte) => Buffer.from([byte]));
  for (const chunks of [
    [...split, request('/healthz')],
    [Buffer.concat([proxyV1(LB_CLIENT, ADMIN), request('/healthz')])],
    [localV2(), request('/healthz')],
  ]) {
    assert.deepEqual(responses(await exchange(admin.address.port, chunks)), [{ status: '200', body: 'ok\n' }]);
  }
  const res = await fetch(`${admin.url}/readyz`);
  assert.equal(res.status, 200);
  assert.equal(await res.text(), '{"status":"ready"}\n');
});

test('PROXY required: a request without a header, or after a malformed one, is closed with no reply and logged', async (t) => {
  const { logger, lines } = quietLogger();
  const admin = await start(t, { proxyProtocol: 'required', logger });
  assert.equal(await exchange(admin.address.port, [request('/healthz')]), '');
  assert.equal(await exchange(admin.address.port, [Buffer.concat([rawV2(0x31, 0x11), request('/healthz')])]), '');
  assert.deepEqual(responses(await exchange(admin.address.port, [proxyV2(LB_CLIENT, ADMIN), request('/healthz')])), [
    { status: '200', body: 'ok\n' },
  ]);
  const failures = lines().filter((l) => l.msg === 'admin connection closed: no valid PROXY protocol header');
  assert.deepEqual(
    failures.map((l) => (l.err as { failure?: string }).failure),
    ['missing', 'malformed'],
  );
});

test('PROXY off (the default): a header is not stripped, and the HTTP parser rejects it', async (t) => {
  const admin = await start(t);
  const text = await exchange(admin.address.port, [Buffer.concat([proxyV2(LB_CLIENT, ADMIN), request('/healthz')])]);
  assert.match(text, /^HTTP\/1\.1 400 /);
});

test('close() also drops a connection still sending its PROXY header', async (t) => {
  const admin = await start(t, { proxyProtocol: 'optional' });
  const socket = connect({ host: '127.0.0.1', port: admin.address.port });
  socket.on('error', () => undefined);
  await once(socket, 'connect');
  socket.write(proxyV2(LB_CLIENT, ADMIN).subarray(0, 10));
  const closed = once(socket, 'close');
  await sleep(20);
  await admin.close();
  await closed;
});
