// The gateway's Postgres port: accepts TCP connections, runs the client handshake on each, and
// hands clients that named a tenant (or sent a CancelRequest) to the next phase. It bounds the
// number of connections still in the handshake, so a flood of idle or slow clients costs a
// refusal each, not a TLS handshake each. Behind a load balancer, each connection may start with
// a PROXY protocol header (GATEWAY_PROXY_PROTOCOL): its source becomes the client's address.
// Map: docs/architecture.md, step 1.
import { once } from 'node:events';
import { SqlState } from '@tenantgate/wire';
import { createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { performHandshake, type ClientStartup, type HandshakeOptions, type HandshakeResult } from './handshake.ts';
import type { ClientCancel } from '../cancel/index.ts';
import type { Connection } from '../session/index.ts';
import type { GatewayConfig, ListenAddress, ProxyProtocolMode } from '../config/index.ts';
import { connectionLogger, logClientEvent, type Logger } from '../telemetry/index.ts';
import { ConnectionOutcome, type GatewayMetrics } from '../telemetry/index.ts';
import { clientAddressOf, readProxyHeader, type Endpoint, type ProxyHeader, type ProxyHeaderMode } from './proxy-protocol.ts';
import { sendRefusal } from '../refusal.ts';
import { TenantIdentifier } from './tenant-id.ts';
import type { TlsContexts } from './tls-contexts.ts';
import { HandshakeError, ProxyHeaderError, ProxyHeaderFailure, Refusal } from '../errors.ts';

export type ListenerConfig = Pick<
  GatewayConfig,
  'listen' | 'sniSuffixes' | 'allowPlaintext' | 'handshakeTimeoutMs' | 'maxPendingConnections'
> & {
  /** PROXY protocol header before the client's bytes; `off` when absent. */
  readonly proxyProtocol?: ProxyProtocolMode;
};

export interface ListenerOptions {
  readonly config: ListenerConfig;
  /** Undefined only with config.allowPlaintext. */
  readonly contexts: TlsContexts | undefined;
  readonly logger: Logger;
  readonly metrics: GatewayMetrics;
  /**
   * Takes each client that named its tenant, synchronously after the handshake (it attaches the
   * socket's 'error' listener before returning). The `session` (or other) outcome is its to count.
   */
  readonly sessions: { serve(client: ClientStartup, connection: Connection): void };
  /** Takes each CancelRequest, whose socket is already closing. Counted here as outcome `cancel`. */
  readonly cancels: { forward(request: ClientCancel, connection: Connection): void };
  /** Lets several worker processes listen on one port (SO_REUSEPORT, Linux). */
  readonly reusePort?: boolean;
  /** How long a refused client may take to close; REFUSAL_GRACE_MS when absent. */
  readonly refusalGraceMs?: number;
}

export interface Listener {
  /** The bound address (the real port when `listen.port` was 0). */
  readonly address: ListenAddress;
  /** Connections accepted and still in the handshake. */
  readonly pendingHandshakes: number;
  /** Stops accepting; resolves once the handshakes under way have ended (bounded by their timeout). Idempotent. */
  close(): Promise<void>;
}

let lastConnectionId = 0;

/** Listens on `config.listen`; rejects if the port cannot be bound. */
export async function startListener(options: ListenerOptions): Promise<Listener> {
  const { config, contexts, logger } = options;
  if (contexts === undefined && !config.allowPlaintext) throw new Error('startListener: TLS contexts are required unless allowPlaintext');
  const handshakeOptions: HandshakeOptions = {
    contexts,
    tenants: new TenantIdentifier(config.sniSuffixes),
    allowPlaintext: config.allowPlaintext,
    timeoutMs: config.handshakeTimeoutMs,
    metrics: options.metrics,
    refusalGraceMs: options.refusalGraceMs,
  };
  const pending = new Map<Socket, Promise<void>>();
  const server = createServer({ noDelay: true, keepAlive: true, keepAliveInitialDelay: 60_000 }, (socket) =>
    accept(socket, options, handshakeOptions, pending),
  );
  await listen(server, config.listen, options.reusePort);
  server.on('error', (err) => logger.error({ err }, 'listener error'));
  const { address, port } = server.address() as AddressInfo;
  const proxyProtocol = config.proxyProtocol ?? 'off';
  logger.info({ address, port, tls: contexts !== undefined, proxyProtocol }, 'listening for Postgres clients');
  let closing: Promise<void> | undefined;
  return {
    address: { host: address, port },
    get pendingHandshakes() {
      return pending.size;
    },
    close: () => (closing ??= stop(server, pending)),
  };
}

async function listen(server: Server, { host, port }: ListenAddress, reusePort: boolean | undefined): Promise<void> {
  const failed = once(server, 'error');
  // exclusive: a cluster worker binds the port itself (SO_REUSEPORT) instead of taking
  // connections from the primary.
  server.listen({ host, port, ...(reusePort === true ? { reusePort, exclusive: true } : {}) });
  await Promise.race([once(server, 'listening'), failed.then(([err]) => Promise.reject(err))]);
  failed.catch(() => undefined);
}

async function stop(server: Server, pending: ReadonlyMap<Socket, Promise<void>>): Promise<void> {
  // Listening stops at once; server.close's callback would also wait for every session, so it is not awaited.
  server.close();
  await Promise.allSettled(pending.values());
}

function accept(socket: Socket, options: ListenerOptions, handshakeOptions: HandshakeOptions, pending: Map<Socket, Promise<void>>): void {
  if (socket.remoteAddress === undefined) {
    // Gone before we saw it: nothing to say to it, nothing to count.
    socket.destroy();
    return;
  }
  const peer = { address: clientAddressOf(socket.remoteAddress), port: socket.remotePort ?? 0 };
  const connection = newConnection(options.logger, ++lastConnectionId, peer, process.hrtime.bigint());
  if (pending.size >= options.config.maxPendingConnections) return refuseOverload(socket, options, connection);
  const release = () => pending.delete(socket);
  const mode = options.config.proxyProtocol ?? 'off';
  // With PROXY protocol off nothing is added to a connection's path: no header read, no timer.
  const settled =
    mode === 'off'
      ? handshake(socket, handshakeOptions, options, connection, release)
      : handshakeBehindProxy(socket, mode, handshakeOptions, options, connection, release);
  pending.set(socket, settled);
}

function newConnection(logger: Logger, id: number, client: Endpoint, acceptedAt: bigint): Connection {
  return { id, log: connectionLogger(logger, { conn: id, client: formatAddress(client.address, client.port) }), acceptedAt };
}

/** The handshake, then the next phase or the one log line of its failure. `client` overrides the socket's address. */
function handshake(
  socket: Socket,
  handshakeOptions: HandshakeOptions,
  options: ListenerOptions,
  connection: Connection,
  release: () => void,
  client?: Endpoint,
): Promise<void> {
  return performHandshake(socket, handshakeOptions).then(
    (result) => {
      release();
      dispatch(client === undefined ? result : { ...result, clientAddress: client.address, clientPort: client.port }, options, connection);
    },
    (error: unknown) => {
      release();
      reportFailure(error, options.metrics, connection.log);
    },
  );
}

/**
 * The PROXY header first, then the handshake on the bytes after it, within one handshake
 * timeout. From the header on, the connection (its log lines, admission's CIDR check, cancel
 * rate limits) knows the client by the header's source address.
 */
async function handshakeBehindProxy(
  socket: Socket,
  mode: ProxyHeaderMode,
  handshakeOptions: HandshakeOptions,
  options: ListenerOptions,
  connection: Connection,
  release: () => void,
): Promise<void> {
  const { handshakeTimeoutMs } = options.config;
  const startedAt = performance.now();
  let header: ProxyHeader | undefined;
  try {
    header = await readProxyHeader(socket, { mode, timeoutMs: handshakeTimeoutMs });
  } catch (error) {
    release();
    return reportHeaderFailure(error, mode, options.metrics, connection.log);
  }
  const client = clientOf(header);
  const proxied = client === undefined ? connection : newConnection(options.logger, connection.id, client, connection.acceptedAt);
  if (header !== undefined) {
    const proxy = formatAddress(socket.remoteAddress ?? '', socket.remotePort);
    proxied.log.debug({ proxy, header: header.kind, version: header.version }, 'PROXY protocol header');
  }
  const timeoutMs = Math.max(1, Math.ceil(handshakeTimeoutMs - (performance.now() - startedAt)));
  const settled = handshake(socket, { ...handshakeOptions, timeoutMs }, options, proxied, release, client);
  // The header reader left the socket paused, the bytes after the header unread; the handshake reads them now.
  socket.resume();
  await settled;
}

/**
 * The client's endpoint from the header. None from LOCAL (the load balancer's own health check),
 * UNSPEC/UNKNOWN, or a UNIX socket source: no IP to check, so the socket's own address stands.
 */
function clientOf(header: ProxyHeader | undefined): Endpoint | undefined {
  return header?.kind === 'proxy' && header.family !== 'unix' ? header.source : undefined;
}

const HEADER_FAILURE_OUTCOMES: Readonly<Record<ProxyHeaderFailure, ConnectionOutcome>> = {
  [ProxyHeaderFailure.Malformed]: ConnectionOutcome.Refused,
  [ProxyHeaderFailure.Missing]: ConnectionOutcome.Refused,
  [ProxyHeaderFailure.Timeout]: ConnectionOutcome.Timeout,
  [ProxyHeaderFailure.Closed]: ConnectionOutcome.ClientClosed,
};

/** The one log line of a connection closed for its PROXY header (no reply: the peer is the load balancer), and its count. */
function reportHeaderFailure(error: unknown, mode: ProxyHeaderMode, metrics: GatewayMetrics, log: Logger): void {
  if (!(error instanceof ProxyHeaderError)) return reportFailure(error, metrics, log);
  const outcome = HEADER_FAILURE_OUTCOMES[error.failure];
  metrics.connections.inc({ outcome });
  const fields = { outcome, reason: error.message, proxyProtocol: mode };
  switch (error.failure) {
    case ProxyHeaderFailure.Closed:
      return log.debug(fields, 'client left before its PROXY protocol header');
    case ProxyHeaderFailure.Timeout:
      return logClientEvent(log, 'info', fields, 'connection closed: no PROXY protocol header in time');
    default:
      // Often a deployment fault (the load balancer not sending headers, or clients bypassing it): warn.
      return logClientEvent(log, 'warn', fields, 'connection closed: invalid PROXY protocol header');
  }
}

/**
 * Above the cap, the client gets 53300 at once, before any read or TLS work. It arrives where
 * the client expects 'S': libpq up to 16 shows it, 17 reports an error during the SSL exchange.
 */
function refuseOverload(socket: Socket, options: ListenerOptions, connection: Connection): void {
  const refusal = new Refusal(SqlState.TooManyConnections, 'too many connections', {
    detail: 'The gateway has too many connections in progress.',
    hint: 'Retry in a moment.',
  });
  sendRefusal(socket, refusal, { metrics: options.metrics, graceMs: options.refusalGraceMs });
  options.metrics.connections.inc({ outcome: ConnectionOutcome.Refused });
  const fields = { outcome: ConnectionOutcome.Refused, sqlstate: refusal.sqlState, limit: options.config.maxPendingConnections };
  logClientEvent(connection.log, 'warn', fields, 'connection refused: too many handshakes in progress');
}

function dispatch(result: HandshakeResult, options: ListenerOptions, connection: Connection): void {
  try {
    if (result.kind === 'cancel') {
      options.metrics.connections.inc({ outcome: ConnectionOutcome.Cancel });
      connection.log.debug({ tls: result.tls, processId: result.processId }, 'cancel request');
      options.cancels.forward(result, connection);
      return;
    }
    connection.log.setBindings({ tenant: result.tenantId });
    connection.log.debug(
      {
        tls: result.tls,
        directTls: result.directTls,
        serverName: result.serverName,
        tenantIdOrigin: result.tenantIdOrigin,
        protocol: `3.${result.startup.minorVersion}`,
      },
      'client handshake complete',
    );
    options.sessions.serve(result, connection);
  } catch (err) {
    options.metrics.connections.inc({ outcome: ConnectionOutcome.Error });
    connection.log.error({ err }, 'the next phase failed to take the connection');
    if (result.kind === 'startup') result.socket.destroy();
  }
}

/** The one log line of a handshake that ended without a result, and its outcome count. */
function reportFailure(error: unknown, metrics: GatewayMetrics, log: Logger): void {
  if (!(error instanceof HandshakeError)) {
    metrics.connections.inc({ outcome: ConnectionOutcome.Error });
    log.error({ err: error, outcome: ConnectionOutcome.Error }, 'handshake failed');
    return;
  }
  const { outcome, refusal } = error;
  metrics.connections.inc({ outcome });
  const fields = { outcome, reason: error.message, ...(refusal === undefined ? {} : { sqlstate: refusal.sqlState }) };
  switch (outcome) {
    case ConnectionOutcome.Error:
      return log.error({ ...fields, err: error.cause }, 'handshake failed');
    case ConnectionOutcome.ClientClosed:
      return log.debug(fields, 'client left during the handshake');
    default:
      return logClientEvent(log, 'info', fields, refusal === undefined ? 'connection closed during the handshake' : 'connection refused');
  }
}

/** `ip:port`, with brackets around IPv6 addresses. */
function formatAddress(address: string, port: number | undefined): string {
  return address.includes(':') ? `[${address}]:${port ?? 0}` : `${address}:${port ?? 0}`;
}
