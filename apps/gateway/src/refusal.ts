// How the gateway says no to a client before the splice: one FATAL ErrorResponse (a Refusal or
// another error of errors.ts), then a graceful close. Used by every leg of the client side.
// Map: docs/architecture.md, "Errors".
import type { Socket } from 'node:net';
import { isKnownSqlState } from '@tenantgate/wire';
import type { RefusalLike } from './errors.ts';
import type { GatewayMetrics } from './telemetry/index.ts';

/** How long a refused client gets to read the error and close its side before we destroy. */
export const REFUSAL_GRACE_MS = 1000;

export interface SendRefusalOptions {
  /** Counts `tenantgate_refusals_total{sqlstate}` for the SQLSTATEs of libs/wire's table. */
  readonly metrics?: Pick<GatewayMetrics, 'refusals'>;
  readonly graceMs?: number;
}

/**
 * Writes the refusal as a FATAL ErrorResponse and closes the socket (a TLSSocket after the
 * upgrade, so the error travels encrypted). Whatever the client still sends is read and
 * dropped until the close: unread bytes in the kernel would turn our close into a reset, and a
 * reset can discard the error before the client reads it.
 */
export function sendRefusal(socket: Socket, refusal: RefusalLike, options: SendRefusalOptions = {}): void {
  const { metrics, graceMs = REFUSAL_GRACE_MS } = options;
  if (metrics !== undefined && isKnownSqlState(refusal.sqlState)) metrics.refusals.inc({ sqlstate: refusal.sqlState });
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

function discard(): void {
  // Bytes after a refusal mean nothing; reading them only keeps the close clean.
}
