// The backend leg (docs/architecture.md, step 10) in two steps, so that the TCP connect and the TLS handshake
// run while the client is still authenticating and nothing reaches the backend before it has:
//
//   const opened = openBackend({ host, port, serverName, secureContext, sessionCache, connectTimeoutMs });
//   ...authenticate the client...
//   const session = await startBackendSession(await opened, { parameters, auth, timeoutMs });
//   // or, when the client fails: abandonBackend(await opened)
//
// Every failure path destroys the socket. A phase that waits on the backend has its own timeout.
// @see https://www.postgresql.org/docs/current/protocol-flow.html#PROTOCOL-FLOW-SSL
import type { X509Certificate } from 'node:crypto';
import { connect as connectTcp, type Socket } from 'node:net';
import { performance } from 'node:perf_hooks';
import { connect as connectTls, type SecureContext, type TLSSocket } from 'node:tls';
import { serializeSSLRequest } from '@tenantgate/wire';
import { BackendClosedError, BackendNoTlsError, BackendPhase, BackendProtocolError, BackendTlsError } from '../errors.ts';
import { describeError, tlsFailure, unreachableError } from './failures.ts';
import { takeIdleWatch, watchIdle } from './idle.ts';
import { checkTimeout, runPhase, type PhaseLimits } from './phase.ts';
import { backendIdentityCheck, backendServerName, sniName, type BackendSessionKey, type TlsSessionCache } from './tls.ts';

export {
  startBackendSession,
  type BackendAuth,
  type BackendAuthMethod,
  type BackendKey,
  type BackendSession,
  type StartBackendSessionOptions,
} from './startup.ts';

export interface OpenBackendOptions {
  readonly host: string;
  readonly port: number;
  /** The name the certificate must carry (and the SNI unless it is an IP address); default `host`. */
  readonly serverName?: string;
  /** From BackendTlsContexts: the tenant's CA and the client certificate, built once. */
  readonly secureContext: SecureContext;
  /** The context's minVersion, to name it when the backend offers nothing from it up. */
  readonly minTlsVersion?: string;
  /** Resumes the backend's last TLS session when it offers tickets; absent: no resumption. */
  readonly sessionCache?: TlsSessionCache;
  /** DNS and the TCP connect. */
  readonly connectTimeoutMs: number;
  /** The SSLRequest answer and the TLS handshake, each; default `connectTimeoutMs`. */
  readonly tlsTimeoutMs?: number;
  /** Idle time before TCP keepalive probes (default 30 s): a backend gone silent is noticed. */
  readonly keepAliveInitialDelayMs?: number;
  readonly signal?: AbortSignal;
}

/** A verified TLS connection to the backend on which nothing has been sent yet. */
export interface OpenedBackend {
  readonly socket: TLSSocket;
  /** The backend's leaf certificate: SCRAM-SHA-256-PLUS binds to it. */
  readonly peerCertificate: X509Certificate;
  readonly sessionReused: boolean;
  /** `TLSv1.3`, `TLSv1.2`. */
  readonly tlsVersion: string;
  /** For the `backend_connect` and `backend_tls` phase histograms. */
  readonly timings: { readonly connectMs: number; readonly tlsMs: number };
}

/** PostgreSQL's answer to an SSLRequest that goes on to TLS; 'N' refuses, 'E' is a very old server's error. */
const SSL_ACCEPTED = 0x53; // S

const DEFAULT_KEEPALIVE_DELAY_MS = 30_000;

/**
 * ALPN `postgresql` in wire format (length, name), as a DataView: from a string list Node copies
 * it into a slice of its shared 64 KiB Buffer pool for every socket, and a slice that lives as long
 * as the session keeps the whole pool alive; from a DataView it copies to a buffer of its own.
 */
const ALPN_POSTGRESQL = new DataView(Uint8Array.from([10, ...Buffer.from('postgresql', 'latin1')]).buffer);

/**
 * TCP connect, SSLRequest, TLS with verify-full. Resolves with a connection ready for
 * {@link startBackendSession}; rejects with a BackendError and leaves no socket behind.
 */
export async function openBackend(options: OpenBackendOptions): Promise<OpenedBackend> {
  const connectTimeoutMs = checkTimeout(options.connectTimeoutMs, 'connectTimeoutMs');
  const tlsLimits: PhaseLimits = {
    timeoutMs: checkTimeout(options.tlsTimeoutMs ?? connectTimeoutMs, 'tlsTimeoutMs'),
    signal: options.signal,
  };
  const serverName = backendServerName(options);
  const where = `backend ${options.host}:${options.port} (server name ${serverName})`;
  const started = performance.now();
  const tcp = await connectSocket(options, where, { timeoutMs: connectTimeoutMs, signal: options.signal });
  const connected = performance.now();
  let socket: TLSSocket | undefined;
  try {
    await requestTls(tcp, where, tlsLimits);
    const done = await handshake(tcp, options, serverName, where, tlsLimits);
    socket = done.socket;
    return opened(done, where, { connectMs: connected - started, tlsMs: performance.now() - connected });
  } catch (error) {
    socket?.destroy();
    tcp.destroy();
    throw error;
  }
}

function connectSocket(options: OpenBackendOptions, where: string, limits: PhaseLimits): Promise<Socket> {
  const socket = connectTcp({
    host: options.host,
    port: options.port,
    // Without TCP_NODELAY every small write waits for the previous one's ACK (~40 ms, Nagle).
    noDelay: true,
    keepAlive: true,
    keepAliveInitialDelay: options.keepAliveInitialDelayMs ?? DEFAULT_KEEPALIVE_DELAY_MS,
  });
  guardBetweenPhases(socket);
  const phase = BackendPhase.Connect;
  return runPhase<Socket>(phase, limits, where, ({ resolve, reject }) => {
    const onConnect = (): void => resolve(socket);
    const onError = (error: Error): void => reject(unreachableError(error, where, phase));
    socket.once('connect', onConnect);
    socket.once('error', onError);
    return () => {
      socket.off('connect', onConnect);
      socket.off('error', onError);
    };
  }).catch((error: unknown) => {
    socket.destroy();
    throw error;
  });
}

/**
 * One byte answers the SSLRequest. Bytes after an 'S' and before our ClientHello cannot come
 * from an honest server: a man in the middle would have them read as if inside TLS
 * (CVE-2021-23222), so they end the connection.
 */
function requestTls(socket: Socket, where: string, limits: PhaseLimits): Promise<void> {
  const phase = BackendPhase.SslRequest;
  return runPhase<void>(phase, limits, where, ({ resolve, reject }) => {
    if (socket.destroyed) {
      reject(new BackendClosedError({ phase, logDetail: `${where}: closed before the SSLRequest` }));
      return () => {};
    }
    const onData = (chunk: Buffer): void => {
      if (chunk[0] !== SSL_ACCEPTED) {
        reject(new BackendNoTlsError({ phase, logDetail: `${where}: answered the SSLRequest with ${describeByte(chunk[0])}` }));
      } else if (chunk.length > 1) {
        const logDetail = `${where}: sent ${chunk.length - 1} bytes after 'S', before the TLS handshake`;
        reject(new BackendProtocolError({ phase, logDetail }));
      } else {
        resolve();
      }
    };
    const onError = (error: Error): void =>
      reject(new BackendClosedError({ phase, logDetail: `${where}: ${describeError(error)}`, cause: error }));
    const onClose = (): void => reject(new BackendClosedError({ phase, logDetail: `${where}: closed before answering the SSLRequest` }));
    socket.on('data', onData);
    socket.once('error', onError);
    socket.once('close', onClose);
    socket.write(serializeSSLRequest());
    return () => {
      socket.off('data', onData);
      socket.off('error', onError);
      socket.off('close', onClose);
    };
  });
}

function describeByte(byte: number | undefined): string {
  if (byte === undefined) return 'nothing';
  const printable = byte >= 0x21 && byte <= 0x7e ? ` '${String.fromCharCode(byte)}'` : '';
  return `0x${byte.toString(16).padStart(2, '0')}${printable}`;
}

function handshake(tcp: Socket, options: OpenBackendOptions, serverName: string, where: string, limits: PhaseLimits): Promise<Handshake> {
  const { sessionCache, secureContext } = options;
  const key: BackendSessionKey = { host: options.host, port: options.port, serverName, secureContext };
  const cached = sessionCache?.get(key);
  const socket = connectTls({
    socket: tcp,
    secureContext,
    servername: sniName(serverName),
    session: cached?.session,
    rejectUnauthorized: true,
    checkServerIdentity: backendIdentityCheck(serverName),
    // libpq 17 sends it too; PostgreSQL 17 refuses any other ALPN, older servers ignore it.
    ALPNProtocols: ALPN_POSTGRESQL,
  });
  guardBetweenPhases(socket);
  const phase = BackendPhase.Tls;
  return runPhase<Handshake>(phase, limits, where, ({ resolve, reject }) => {
    const onSecure = (): void => {
      const reused = socket.isSessionReused();
      const peerCertificate = reused ? cached?.peerCertificate : socket.getPeerX509Certificate();
      if (sessionCache !== undefined && peerCertificate !== undefined) keepTickets(socket, sessionCache, key, peerCertificate);
      resolve({ socket, peerCertificate, reused });
    };
    const onError = (error: Error): void => {
      if (cached !== undefined) sessionCache?.delete(key);
      reject(tlsFailure(error, where, phase, options.minTlsVersion));
    };
    const onClose = (): void =>
      reject(
        new BackendTlsError('the connection closed during the handshake', {
          phase,
          logDetail: `${where}: closed during the TLS handshake`,
        }),
      );
    socket.once('secureConnect', onSecure);
    socket.once('error', onError);
    socket.once('close', onClose);
    return () => {
      socket.off('secureConnect', onSecure);
      socket.off('error', onError);
      socket.off('close', onClose);
    };
  }).catch((error: unknown) => {
    socket.destroy();
    throw error;
  });
}

interface Handshake {
  readonly socket: TLSSocket;
  /** Of a full handshake, or kept with the session when it was resumed. */
  readonly peerCertificate: X509Certificate | undefined;
  readonly reused: boolean;
}

/** TLS 1.3 tickets arrive after the handshake, and more than one may come: keep the newest. */
function keepTickets(socket: TLSSocket, cache: TlsSessionCache, key: BackendSessionKey, peerCertificate: X509Certificate): void {
  socket.on('session', (session: Buffer) => cache.set(key, { session, peerCertificate }));
}

/**
 * Each phase listens for 'error' only while it runs; an error in the gap between two phases
 * (or after the hand-over, before the caller listens) must not crash the process. The socket is
 * destroyed by the error, and the next phase reports it as closed.
 */
function guardBetweenPhases(socket: Socket): void {
  socket.on('error', ignoreError);
}

function ignoreError(): void {
  // Reported by the phase listening at the time, or as a close by the next one.
}

function opened({ socket, peerCertificate, reused }: Handshake, where: string, timings: OpenedBackend['timings']): OpenedBackend {
  if (socket.destroyed) {
    throw new BackendClosedError({ phase: BackendPhase.Tls, logDetail: `${where}: closed right after the TLS handshake` });
  }
  if (peerCertificate === undefined) {
    throw new BackendTlsError('the database presented no certificate', {
      phase: BackendPhase.Tls,
      logDetail: `${where}: no peer certificate`,
    });
  }
  const tlsVersion = socket.getProtocol() ?? 'unknown';
  watchIdle(socket, where, tlsVersion);
  return { socket, peerCertificate, sessionReused: reused, tlsVersion, timings };
}

/** Grace for an unused backend connection to close cleanly before it is destroyed. */
export const ABANDON_GRACE_MS = 1000;

/**
 * Closes an opened connection whose session will not start (the client failed to authenticate
 * or went away): TLS close_notify and FIN, which PostgreSQL takes silently, then destroy.
 */
export function abandonBackend(opened: OpenedBackend, graceMs = ABANDON_GRACE_MS): void {
  const { socket } = opened;
  takeIdleWatch(socket);
  if (socket.destroyed) return;
  const timer = setTimeout(() => socket.destroy(), graceMs);
  timer.unref();
  socket.once('close', () => clearTimeout(timer));
  // Read (and drop) whatever comes, so the server's close is seen and the socket goes at once.
  socket.resume();
  socket.end();
}
