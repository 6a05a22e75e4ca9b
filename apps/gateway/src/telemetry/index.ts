// What the rest of the gateway uses of telemetry/; everything else here is internal to it.
export { type Logger, connectionLogger, createLogger } from './logger.ts';
export {
  CancelResult,
  ConnectionOutcome,
  Direction,
  type GatewayMetrics,
  MetricName,
  Phase,
  controlPlaneStatus,
  createMetrics,
} from './metrics.ts';
export { CLIENT_LINES_PER_SECOND, logClientEvent } from './log-limit.ts';
export { endWithError, inSpan, recordPhaseSpan, recordSessionEnd, SpanAttribute, startConnectionSpan, startPhaseSpan } from './tracing.ts';
export {
  ProtocolTrace,
  TenantTraces,
  TraceDirection,
  TRACE_MAX_MESSAGES,
  type ProtocolTraceOptions,
  type WireTap,
} from './protocol-trace.ts';
