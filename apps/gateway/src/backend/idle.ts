// What watches a backend connection between the TLS handshake and the StartupMessage (the
// client is authenticating meanwhile), and how a connection that ended without a word is read.
// Map: docs/architecture.md, step 10.
import { performance } from 'node:perf_hooks';
import type { TLSSocket } from 'node:tls';
import { BackendClientCertificateRefusedError, BackendClosedError, type BackendError, type BackendPhase } from '../errors.ts';
import { describeError, errorCode, isClientCertificateAlert, tlsFailure } from './failures.ts';

/**
 * What watches an opened connection until its session starts. PostgreSQL says nothing before the
 * StartupMessage, so any event here is news: under TLS 1.3 the server judges our client
 * certificate after our side of the handshake is over, and its alert (or a bare close) arrives
 * now.
 */
export interface IdleWatch {
  /** `host:port (server name ...)`, for log details. */
  readonly where: string;
  readonly tlsVersion: string;
  readonly handshakeAt: number;
  error: Error | undefined;
  closedAt: number | undefined;
  unexpectedBytes: number;
  stop(): void;
}

const idleWatches = new WeakMap<TLSSocket, IdleWatch>();

/** The watch of a socket from openBackend, handed over once. */
export function takeIdleWatch(socket: TLSSocket): IdleWatch | undefined {
  const watch = idleWatches.get(socket);
  idleWatches.delete(socket);
  watch?.stop();
  return watch;
}

/** Starts watching a socket that openBackend just verified. */
export function watchIdle(socket: TLSSocket, where: string, tlsVersion: string): void {
  const onData = (chunk: Buffer): void => {
    watch.unexpectedBytes += chunk.length;
  };
  const onError = (error: Error): void => {
    watch.error ??= error;
  };
  const onClose = (): void => {
    watch.closedAt ??= performance.now();
  };
  const watch: IdleWatch = {
    where,
    tlsVersion,
    handshakeAt: performance.now(),
    error: undefined,
    closedAt: undefined,
    unexpectedBytes: 0,
    stop() {
      socket.off('data', onData);
      socket.off('error', onError);
      socket.off('close', onClose);
    },
  };
  socket.on('data', onData);
  socket.on('error', onError);
  socket.on('close', onClose);
  idleWatches.set(socket, watch);
}

/**
 * How long after a TLS 1.3 handshake a close without a word is read as the server refusing our
 * client certificate. PostgreSQL decides that within a round trip; a later close is something
 * else (authentication_timeout, a restart) and is reported as a plain close.
 */
export const CLIENT_CERTIFICATE_VERDICT_MS = 1000;

/**
 * The error for a connection that ended before the backend sent a byte: the server's TLS alert
 * when it sent one, a refused client certificate when a TLS 1.3 server closed at once, else a
 * plain close.
 */
export function silentEndError(
  watch: Pick<IdleWatch, 'where' | 'tlsVersion' | 'handshakeAt'>,
  error: Error | undefined,
  phase: BackendPhase,
): BackendError {
  if (error !== undefined && (isClientCertificateAlert(error) || errorCode(error)?.startsWith('ERR_SSL_'))) {
    return tlsFailure(error, watch.where, phase);
  }
  const what = error === undefined ? 'closed' : describeError(error);
  const soon = performance.now() - watch.handshakeAt <= CLIENT_CERTIFICATE_VERDICT_MS;
  if (watch.tlsVersion === 'TLSv1.3' && soon) {
    const logDetail = `${watch.where}: ${what} right after the TLS 1.3 handshake without a reply; read as a refusal of the client certificate`;
    return new BackendClientCertificateRefusedError({ phase, logDetail, cause: error });
  }
  return new BackendClosedError({ phase, logDetail: `${watch.where}: ${what} before sending anything`, cause: error });
}
