// The pino setup of both apps: JSON lines on stdout with level names and ISO times, and one list
// of the fields that hold credentials, redacted by configuration so no call site has to remember.
import { traceFields } from './tracing.ts';
import { pino, type DestinationStream, type LevelWithSilent, type Logger, type LoggerOptions as PinoOptions } from 'pino';

/**
 * Fields that hold credentials in what either app logs: configuration, tenant routes with role
 * secrets, passwords in request bodies, HTTP headers, cancel keys. pino's redaction is not
 * recursive, so each path names a depth; log these objects at the top level or under `config`,
 * `tenant` or `route`, where these paths find them.
 */
export const REDACT_PATHS: readonly string[] = [
  'password',
  '*.password',
  'token',
  '*.token',
  'scramSecret',
  '*.scramSecret',
  'roles[*].scramSecret',
  'roles[*].password',
  '*.roles[*].scramSecret',
  '*.roles[*].password',
  'key',
  '*.key',
  'privateKey',
  '*.privateKey',
  'cancelKey',
  '*.cancelKey',
  'redisUrl',
  '*.redisUrl',
  'headers.authorization',
  '*.headers.authorization',
  // The gateway's configuration, logged whole at start-up: key PEM text, the control plane
  // token, a Redis URL (may carry its password); paths and the PEM of certificates stay readable.
  'config.tenantSource.token',
  'config.controlPlaneToken',
  'config.tls.certificates[*].key.pem',
  'config.backend.client.key.pem',
];

export const REDACTED = '[Redacted]';

/** The pino options of both apps (Fastify takes them as its `logger` option too). */
export function loggerOptions(level: LevelWithSilent = 'info'): PinoOptions {
  return {
    level,
    redact: { paths: [...REDACT_PATHS], censor: REDACTED },
    // ISO time and level names read well in CloudWatch and need no lookup table in queries.
    timestamp: pino.stdTimeFunctions.isoTime,
    formatters: { level: (label) => ({ level: label }) },
    // Inside a traced span, the line names it: logs and traces join on trace_id.
    mixin: traceFields,
  };
}

export interface LoggerOptions {
  readonly level: LevelWithSilent;
  /** Where JSON lines go; stdout (asynchronous, flushed at exit) when absent. */
  readonly destination?: DestinationStream;
}

export type { Logger } from 'pino';

export function createLogger({ level, destination }: LoggerOptions): Logger {
  // Asynchronous writes keep logging off the connection path; pino flushes them on exit.
  return pino(loggerOptions(level), destination ?? pino.destination({ dest: 1, sync: false }));
}
