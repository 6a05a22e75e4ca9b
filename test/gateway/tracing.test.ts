// Traces (docs/architecture.md, "Inside the gateway"): with the OpenTelemetry SDK running (here
// with an in-memory exporter; in the apps, started by the OTEL_* variables), one connection
// through the gateway to a tenant resolved from the real control plane gives a connection span
// with a child per phase, the Redis tier's commands and the control-plane request under `resolve`, the control plane's own
// request span in the same trace (continued from traceparent), and, when the session closes, a
// short `session_end` span. A refused login's span carries its SQLSTATE.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { NodeSDK } from '@opentelemetry/sdk-node';
import { InMemorySpanExporter, SimpleSpanProcessor, type ReadableSpan } from '@opentelemetry/sdk-trace';
import { UndiciInstrumentation } from '@opentelemetry/instrumentation-undici';
import { FastifyOtelInstrumentation } from '@fastify/otel';
import { ControlPlaneDirectory, createLogger, createMetrics } from '@tenantgate/gateway';
import { startTracing, traceFields } from '@tenantgate/runtime';
import { trace } from '@opentelemetry/api';
import { createTestPki, startRedis } from '@tenantgate/testing';
import { call, GATEWAY_TOKEN, startTestControlPlane } from '../control-plane/harness.ts';
import { connectError, connectPg, createTestGateway, PASSWORD, pgClient, startCertBackend, tenantHost } from './harness.ts';

const PHASES = ['tls', 'resolve', 'admit', 'auth', 'backend_connect', 'backend_tls', 'backend_auth'];

test('one connection: its span, a child per phase, the control plane in the same trace, and the session end', async (t) => {
  const exporter = new InMemorySpanExporter();
  // As the apps' startTracing does, with spans kept in memory instead of sent.
  const sdk = new NodeSDK({
    serviceName: 'tenantgate-test',
    spanProcessors: [new SimpleSpanProcessor({ exporter })],
    instrumentations: [new UndiciInstrumentation(), new FastifyOtelInstrumentation({ registerOnInitialization: true })],
    metricReaders: [],
    logRecordProcessors: [],
  });
  sdk.start();
  t.after(() => sdk.shutdown());

  const pki = await createTestPki();
  const backend = await startCertBackend(t, pki);
  const redis = await startRedis();
  t.after(() => redis.stop());
  const controlPlane = await startTestControlPlane(t);
  const created = await call(controlPlane.url, 'POST', '/v1/tenants', {
    json: { id: 'acme', backend: { host: '127.0.0.1', port: backend.port }, roles: [{ name: 'app', password: PASSWORD }] },
  });
  assert.equal(created.status, 201);
  const directory = new ControlPlaneDirectory({
    controlPlaneUrl: controlPlane.url,
    controlPlaneToken: GATEWAY_TOKEN,
    redisUrl: redis.url,
    metrics: createMetrics(),
    logger: createLogger({ level: 'silent' }),
  });
  await directory.ready();
  const gateway = await createTestGateway(pki, directory);
  t.after(() => gateway.close());
  exporter.reset();
  // Log lines written inside a span name it (the pino mixin of both apps).
  trace.getTracer('test').startActiveSpan('logged', (span) => {
    assert.deepEqual(traceFields(), { trace_id: span.spanContext().traceId, span_id: span.spanContext().spanId });
    span.end();
  });

  const client = await connectPg(t, gateway, pki, { servername: tenantHost('acme'), database: 'app' });
  const spans = (): ReadableSpan[] => exporter.getFinishedSpans();
  const connection = spans().find((span) => span.name === 'postgres connection');
  assert.ok(
    connection,
    `no connection span among ${spans()
      .map((s) => s.name)
      .join(', ')}`,
  );
  const { traceId, spanId } = connection.spanContext();
  assert.equal(connection.attributes['tenantgate.tenant.id'], 'acme');
  assert.equal(connection.attributes['client.address'], '127.0.0.1');
  assert.equal(connection.attributes['db.system.name'], 'postgresql');
  assert.equal(connection.attributes['db.user'], 'app');
  assert.equal(connection.attributes['tenantgate.outcome'], 'session');
  const inTrace = spans().filter((span) => span.spanContext().traceId === traceId);
  const parentOf = (span: ReadableSpan) => span.parentSpanContext?.spanId;
  for (const phase of PHASES) {
    const span = inTrace.find((s) => s.name === phase);
    assert.ok(span, `no ${phase} span`);
    assert.equal(parentOf(span), spanId, `${phase} is a child of the connection`);
  }
  // The cold lookup: the resolver's request under `resolve`, and the control plane's request span
  // continuing the same trace on the other side of HTTP.
  const resolve = inTrace.find((s) => s.name === 'resolve')!;
  const request = inTrace.find((s) => parentOf(s) === resolve.spanContext().spanId && s.attributes['http.request.method'] === 'GET');
  assert.ok(request, `no control-plane request under resolve: ${inTrace.map((s) => s.name).join(', ')}`);
  const redisReads = inTrace.filter((s) => s.attributes['db.system.name'] === 'redis' && parentOf(s) === resolve.spanContext().spanId);
  assert.deepEqual(redisReads.map((s) => s.name).sort(), ['EVALSHA', 'GET'], 'the Redis tier read (a miss) and filled under resolve');
  const served = inTrace.filter((s) => s.instrumentationScope.name.includes('fastify'));
  assert.ok(
    served.length > 0,
    `the control plane's spans are not in the trace: ${spans()
      .map((s) => `${s.instrumentationScope.name}:${s.name}`)
      .join(', ')}`,
  );

  await client.end();
  for (let i = 0; i < 50 && !spans().some((s) => s.name === 'session_end'); i++) await new Promise((resolve) => setTimeout(resolve, 20));
  const end = spans().find((s) => s.name === 'session_end');
  assert.ok(end, 'no session_end span');
  assert.equal(parentOf(end), spanId);
  assert.equal(end.attributes['tenantgate.close.reason'], 'client_closed');
  assert.ok(Number(end.attributes['tenantgate.bytes.to_client']) > 0);

  // A refused login: its span ends in error with the SQLSTATE the client got.
  exporter.reset();
  assert.equal(
    (await connectError(pgClient(gateway, pki, { servername: tenantHost('acme'), database: 'app', password: 'wrong' }))).code,
    '28P01',
  );
  const refused = spans().find((s) => s.name === 'postgres connection');
  assert.ok(refused);
  assert.equal(refused.attributes['db.response.status_code'], '28P01');
  assert.equal(refused.status.code, 2, 'status ERROR');
});

test('with no OTEL_* variable saying where spans go, no SDK starts and no instrumentation is loaded', async () => {
  assert.deepEqual(traceFields(), {}, 'outside a span, log lines carry no trace fields');
  let loaded = 0;
  const instrumentations = async () => {
    loaded++;
    return [];
  };
  assert.equal(await startTracing({ serviceName: 'x', instrumentations, env: {} }), undefined);
  assert.equal(await startTracing({ serviceName: 'x', instrumentations, env: { OTEL_TRACES_EXPORTER: 'none' } }), undefined);
  assert.equal(
    await startTracing({
      serviceName: 'x',
      instrumentations,
      env: { OTEL_EXPORTER_OTLP_ENDPOINT: 'http://collector:4318', OTEL_SDK_DISABLED: 'true' },
    }),
    undefined,
  );
  assert.equal(loaded, 0);
});
