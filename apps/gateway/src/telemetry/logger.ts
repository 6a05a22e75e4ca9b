// The gateway's pino loggers: JSON lines on stdout, secrets redacted by configuration (so no call
// site has to remember), one child logger per connection carrying its id, client and tenant.
// Map: docs/architecture.md, "Inside the gateway".
import { pino, type DestinationStream, type LevelWithSilent, type Logger } from 'pino';

export type { Logger } from 'pino';

/**
 * Fields that hold credentials in what the gateway logs: its configuration, tenant routes with
 * role secrets, HTTP headers of control plane requests, cancel keys. pino's redaction is not
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
  // GatewayConfig, logged whole at start-up: key PEM text, the control plane token, a Redis
  // URL (may carry its password); paths and the PEM of certificates stay readable.
  'config.tenantSource.token',
  'config.controlPlaneToken',
  'config.tls.certificates[*].key.pem',
  'config.backend.client.key.pem',
];

export const REDACTED = '[Redacted]';

export interface LoggerOptions {
  readonly level: LevelWithSilent;
  /** Where JSON lines go; stdout (asynchronous, flushed at exit) when absent. */
  readonly destination?: DestinationStream;
}

export function createLogger({ level, destination }: LoggerOptions): Logger {
  return pino(
    {
      level,
      redact: { paths: [...REDACT_PATHS], censor: REDACTED },
      // ISO time and level names read well in CloudWatch and need no lookup table in queries.
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
    },
    // Asynchronous writes keep logging off the connection path; pino flushes them on exit.
    destination ?? pino.destination({ dest: 1, sync: false }),
  );
}

export interface ConnectionBindings {
  /** The connection id: unique within the process, on every line about this connection. */
  readonly conn: string | number;
  /** The client address as `ip:port` (the PROXY protocol source when there is one). */
  readonly client: string;
  /** Known once SNI or the startup packet named it; add it later with `log.setBindings({ tenant })`. */
  readonly tenant?: string;
}

/** The logger of one client connection: every line carries `conn`, `client` and `tenant`. */
export function connectionLogger(root: Logger, { conn, client, tenant }: ConnectionBindings): Logger {
  return root.child(tenant === undefined ? { conn, client } : { conn, client, tenant });
}
