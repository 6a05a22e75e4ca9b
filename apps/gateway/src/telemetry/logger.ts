// The gateway's pino loggers: the setup both apps share (libs/runtime: JSON lines on stdout, level
// names, secrets redacted by configuration), and one child logger per connection carrying its id,
// client and tenant.
// Map: docs/architecture.md, "Inside the gateway".
import type { Logger } from '@tenantgate/runtime';

export { createLogger, REDACT_PATHS, REDACTED, type Logger, type LoggerOptions } from '@tenantgate/runtime';

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
