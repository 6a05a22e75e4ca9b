// A span per Redis command on a connection's path (the resolver's route reads and fills, the
// gateway's fleet limits and cancel keys), named and attributed as OpenTelemetry's database
// conventions say. ioredis's own instrumentation patches CommonJS loading, which these ES
// modules bypass; without an SDK the spans are OpenTelemetry's no-op.
import { SpanKind, SpanStatusCode, trace } from '@opentelemetry/api';

const tracer = trace.getTracer('tenantgate-redis');

/** Runs one Redis command (or script) as a client span under the span active here. */
export function redisSpan<T>(operation: string, command: () => Promise<T>): Promise<T> {
  return tracer.startActiveSpan(
    operation,
    { kind: SpanKind.CLIENT, attributes: { 'db.system.name': 'redis', 'db.operation.name': operation } },
    async (span) => {
      try {
        return await command();
      } catch (error) {
        span.setStatus({ code: SpanStatusCode.ERROR, message: (error as Error).message });
        throw error;
      } finally {
        span.end();
      }
    },
  );
}
