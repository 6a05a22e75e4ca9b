// A refusal is how the gateway says no to a client before the splice: one FATAL ErrorResponse
// with a real SQLSTATE and a message for the person holding the connection string, then a
// graceful close. Messages never carry internal addresses, stack traces or backend names.
// @see https://www.postgresql.org/docs/current/errcodes-appendix.html
import type { Socket } from 'node:net';
import { buildErrorResponse } from '@tenantgate/wire';
import { REFUSAL_SQLSTATES, type GatewayMetrics, type RefusalSqlState } from './telemetry/metrics.ts';

/** The SQLSTATEs the client-facing phases use (PostgreSQL's names in the comments). */
export const SqlState = {
  /** sqlserver_rejected_establishment_of_sqlconnection: no, unknown or conflicting tenant. */
  ConnectionRejected: '08004',
  /** invalid_authorization_specification: TLS required, no user name. */
  InvalidAuthorization: '28000',
  /** protocol_violation: malformed packets, bytes after SSLRequest. */
  ProtocolViolation: '08P01',
  /** feature_not_supported: replication connections, unknown protocol major version. */
  FeatureNotSupported: '0A000',
  /** too_many_connections. */
  TooManyConnections: '53300',
  /** query_canceled: PostgreSQL's code for "canceling authentication due to timeout". */
  QueryCanceled: '57014',
} as const;
export type SqlState = (typeof SqlState)[keyof typeof SqlState];

export const REFUSED_ERROR_CODE = 'TG_ERR_REFUSED';

export interface RefusalOptions extends ErrorOptions {
  readonly detail?: string;
  readonly hint?: string;
}

/** A decision to turn a client away, with what the client is told. */
export class Refusal extends Error {
  readonly code = REFUSED_ERROR_CODE;
  readonly sqlState: string;
  readonly detail: string | undefined;
  readonly hint: string | undefined;

  constructor(sqlState: string, message: string, options: RefusalOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'Refusal';
    this.sqlState = sqlState;
    this.detail = options.detail;
    this.hint = options.hint;
  }

  /** The FATAL ErrorResponse the client receives. */
  toErrorResponse(): Buffer {
    return buildErrorResponse({
      severity: 'FATAL',
      code: this.sqlState,
      message: this.message,
      ...(this.detail === undefined ? {} : { detail: this.detail }),
      ...(this.hint === undefined ? {} : { hint: this.hint }),
    });
  }
}

/** How long a refused client gets to read the error and close its side before we destroy. */
export const REFUSAL_GRACE_MS = 1000;

export interface SendRefusalOptions {
  /** Counts `tenantgate_refusals_total{sqlstate}` for the SQLSTATEs of DESIGN.md's table. */
  readonly metrics?: Pick<GatewayMetrics, 'refusals'>;
  readonly graceMs?: number;
}

/**
 * Writes the refusal as a FATAL ErrorResponse and closes the socket (a TLSSocket after the
 * upgrade, so the error travels encrypted). Whatever the client still sends is read and
 * dropped until the close: unread bytes in the kernel would turn our close into a reset, and a
 * reset can discard the error before the client reads it.
 */
/** Anything that knows its SQLSTATE and the FATAL it sends: a Refusal, a BackendError. */
export interface RefusalLike {
  readonly sqlState: string;
  toErrorResponse(): Buffer;
}

export function sendRefusal(socket: Socket, refusal: RefusalLike, options: SendRefusalOptions = {}): void {
  const { metrics, graceMs = REFUSAL_GRACE_MS } = options;
  if (metrics !== undefined && isRefusalSqlState(refusal.sqlState)) metrics.refusals.inc({ sqlstate: refusal.sqlState });
  if (socket.destroyed) return;
  socket.on('data', discard);
  socket.resume();
  closeGracefully(socket, refusal.toErrorResponse(), graceMs);
}

/**
 * Ends the socket (after `last`, when given), and destroys it if the peer has not closed its
 * side within `graceMs`. Safe to call on a socket already closing.
 */
export function closeGracefully(socket: Socket, last: Buffer | undefined, graceMs = REFUSAL_GRACE_MS): void {
  if (socket.destroyed) return;
  const timer = setTimeout(() => socket.destroy(), graceMs);
  timer.unref();
  socket.once('close', () => clearTimeout(timer));
  // The connection is ending on purpose; a reset from the peer now only ends it sooner.
  socket.on('error', () => socket.destroy());
  if (last === undefined) socket.end();
  else socket.end(last);
}

const COUNTED = new Set<string>(REFUSAL_SQLSTATES);

function isRefusalSqlState(sqlState: string): sqlState is RefusalSqlState {
  return COUNTED.has(sqlState);
}

function discard(): void {
  // Bytes after a refusal mean nothing; reading them only keeps the close clean.
}
