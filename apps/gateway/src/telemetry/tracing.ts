// The gateway's spans (docs/architecture.md, "Inside the gateway"): one per client connection,
// from accept to hand-over, with a child per phase (tls, resolve, admit, auth, backend_connect,
// backend_tls, backend_auth). A long session is not an endless span: the connection span ends
// at hand-over, and the session's end is a short `session_end` span under it with the bytes and
// the close reason. Without an SDK (no OTEL_* variable says where to send spans) every call here
// is OpenTelemetry's no-op.
import { context, ROOT_CONTEXT, SpanStatusCode, trace, type Attributes, type Span } from '@opentelemetry/api';

const tracer = trace.getTracer('tenantgate-gateway');

/** Attribute names: OpenTelemetry's semantic conventions where one exists, `tenantgate.*` otherwise. */
export const SpanAttribute = {
  ClientAddress: 'client.address',
  ClientPort: 'client.port',
  DbSystem: 'db.system.name',
  DbUser: 'db.user',
  DbResponseStatusCode: 'db.response.status_code',
  Tenant: 'tenantgate.tenant.id',
  ConnectionId: 'tenantgate.connection.id',
  Outcome: 'tenantgate.outcome',
  CloseReason: 'tenantgate.close.reason',
  BytesToClient: 'tenantgate.bytes.to_client',
  BytesToBackend: 'tenantgate.bytes.to_backend',
} as const;

/** The span of one client connection, started back at accept (`startMs`, epoch milliseconds). */
export function startConnectionSpan(startMs: number, attributes: Attributes): Span {
  return tracer.startSpan(
    'postgres connection',
    { startTime: startMs, attributes: { [SpanAttribute.DbSystem]: 'postgresql', ...attributes } },
    ROOT_CONTEXT,
  );
}

/** A phase under the span active here (the connection's, inside inSpan), from `startMs` or now. */
export function startPhaseSpan(phase: string, startMs?: number): Span {
  return tracer.startSpan(phase, startMs === undefined ? {} : { startTime: startMs });
}

/** A phase measured after the fact: `startMs` to `endMs`. */
export function recordPhaseSpan(phase: string, startMs: number, endMs: number): void {
  tracer.startSpan(phase, { startTime: startMs }).end(endMs);
}

/** Runs `fn` with `span` active: phases, the control-plane request and log lines find it. */
export function inSpan<T>(span: Span, fn: () => T): T {
  return context.with(trace.setSpan(context.active(), span), fn);
}

/** Ends a span that failed: status ERROR with the error's message. */
export function endWithError(span: Span, error: unknown, attributes: Attributes = {}): void {
  span.setAttributes(attributes);
  span.setStatus({ code: SpanStatusCode.ERROR, message: error instanceof Error ? error.message : String(error) });
  span.end();
}

/** A short span under the (ended) connection span, when the session it handed over closes. */
export function recordSessionEnd(connection: Span, attributes: Attributes): void {
  tracer.startSpan('session_end', { attributes }, trace.setSpan(ROOT_CONTEXT, connection)).end();
}
