// OpenTelemetry traces for both apps, configured only by the standard OTEL_* variables: the SDK
// starts when one of them says where spans go (an OTLP endpoint, or an exporter other than
// `none`), and not at all otherwise: the SDK and the instrumentations are imported only then, so
// an untraced process does not load them (about 40 MiB of RSS for the SDK alone). Log lines written
// inside a span carry its `trace_id` and `span_id` (loggerOptions' mixin).
import { trace, type Span } from '@opentelemetry/api';
import type { NodeSDK } from '@opentelemetry/sdk-node';

type Instrumentations = NonNullable<ConstructorParameters<typeof NodeSDK>[0]>['instrumentations'];

/** Whether the environment asks for traces: somewhere to send them, and the SDK not disabled. */
export function tracingWanted(env: NodeJS.ProcessEnv): boolean {
  if (env.OTEL_SDK_DISABLED === 'true') return false;
  const exporter = env.OTEL_TRACES_EXPORTER?.trim();
  if (exporter !== undefined && exporter !== '') return exporter !== 'none';
  return Boolean(env.OTEL_EXPORTER_OTLP_ENDPOINT || env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT);
}

export interface Tracing {
  /** Sends what is buffered and stops the SDK. */
  shutdown(): Promise<void>;
}

/**
 * Starts the SDK when the environment asks for it (undefined otherwise), with the
 * instrumentations `instrumentations` imports and makes. Call it before the modules they patch
 * are loaded. OTEL_SERVICE_NAME, when set, wins over `serviceName`.
 */
export async function startTracing(options: {
  serviceName: string;
  instrumentations: () => Promise<Instrumentations>;
  env?: NodeJS.ProcessEnv;
}): Promise<Tracing | undefined> {
  const env = options.env ?? process.env;
  if (!tracingWanted(env)) return undefined;
  const { NodeSDK } = await import('@opentelemetry/sdk-node');
  // Metrics stay with prom-client, logs with pino: only traces go through the SDK.
  const sdk = new NodeSDK({
    serviceName: env.OTEL_SERVICE_NAME ?? options.serviceName,
    instrumentations: await options.instrumentations(),
    metricReaders: [],
    logRecordProcessors: [],
  });
  sdk.start();
  return { shutdown: () => sdk.shutdown() };
}

/** `trace_id` and `span_id` of the span active where a line is logged; nothing outside spans. */
export function traceFields(): { trace_id?: string; span_id?: string } {
  const span: Span | undefined = trace.getActiveSpan();
  if (span === undefined) return {};
  const { traceId, spanId, traceFlags } = span.spanContext();
  // A span that is not recorded (no SDK, or sampled out) has nothing to look up.
  return traceFlags === 0 ? {} : { trace_id: traceId, span_id: spanId };
}
