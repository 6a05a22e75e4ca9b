// The gateway's Postgres port: accepts TCP connections, runs the client handshake on each, and
// hands clients that named a tenant (or sent a CancelRequest) to the next phase. It bounds the
// number of connections still in the handshake, so a flood of idle or slow clients costs a
// refusal each, not a TLS handshake each. PROXY protocol is not read here yet.
import { once } from 'node:events';
import { createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import {
  HandshakeError,
  performHandshake,
  type ClientCancel,
  type ClientStartup,
  type HandshakeOptions,
  type HandshakeResult,
} from './client-handshake.ts';
import type { GatewayConfig, ListenAddress } from './config.ts';
import { connectionLogger, type Logger } from './logger.ts';
import { ConnectionOutcome, type GatewayMetrics } from './metrics.ts';
import { Refusal, SqlState, sendRefusal } from './refusal.ts';
import { TenantIdentifier } from './tenant-id.ts';
import type { TlsContexts } from './tls-contexts.ts';

export type ListenerConfig = Pick<
  GatewayConfig,
  'listen' | 'sniSuffixes' | 'allowPlaintext' | 'handshakeTimeoutMs' | 'maxPendingConnections'
>;

/** One accepted connection, for the phases after the handshake. */
export interface Connection {
  /** Unique within the process; the `conn` of every log line about it. */
  readonly id: number;
  /** Carries `conn`, `client`, and `tenant` once known. */
  readonly log: Logger;
  /** `process.hrtime.bigint()` at accept: the start of the `total` phase. */
  readonly acceptedAt: bigint;
}

export interface ListenerOptions {
  readonly config: ListenerConfig;
  /** Undefined only with config.allowPlaintext. */
  readonly contexts: TlsContexts | undefined;
  readonly logger: Logger;
  readonly metrics: GatewayMetrics;
  /**
   * A client that named its tenant. Called synchronously after the handshake: attach the
   * socket's 'error' listener before returning. The `session` (or other) outcome is the callee's to count.
   */
  readonly onClient: (client: ClientStartup, connection: Connection) => void;
  /** A CancelRequest; its socket is already closing. Counted here as outcome `cancel`. */
  readonly onCancel: (request: ClientCancel, connection: Connection) => void;
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
  logger.info({ address, port, tls: contexts !== undefined }, 'listening for Postgres clients');
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
  const id = ++lastConnectionId;
  const connection: Connection = {
    id,
    log: connectionLogger(options.logger, { conn: id, client: formatAddress(socket.remoteAddress, socket.remotePort) }),
    acceptedAt: process.hrtime.bigint(),
  };
  if (pending.size >= options.config.maxPendingConnections) return refuseOverload(socket, options, connection);
  const settled = performHandshake(socket, handshakeOptions).then(
    (result) => {
      pending.delete(socket);
      dispatch(result, options, connection);
    },
    (error: unknown) => {
      pending.delete(socket);
      reportFailure(error, options.metrics, connection.log);
    },
  );
  pending.set(socket, settled);
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
  connection.log.warn({ outcome: ConnectionOutcome.Refused, sqlstate: refusal.sqlState, limit: options.config.maxPendingConnections }, 'connection refused: too many handshakes in progress');
}

function dispatch(result: HandshakeResult, options: ListenerOptions, connection: Connection): void {
  try {
    if (result.kind === 'cancel') {
      options.metrics.connections.inc({ outcome: ConnectionOutcome.Cancel });
      connection.log.debug({ tls: result.tls, processId: result.processId }, 'cancel request');
      options.onCancel(result, connection);
      return;
    }
    connection.log.setBindings({ tenant: result.tenantId });
    connection.log.debug(
      { tls: result.tls, directTls: result.directTls, serverName: result.serverName, tenantSource: result.tenantSource, protocol: `3.${result.startup.minorVersion}` },
      'client handshake complete',
    );
    options.onClient(result, connection);
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
      return log.info(fields, refusal === undefined ? 'connection closed during the handshake' : 'connection refused');
  }
}

/** `ip:port`, with brackets around IPv6 addresses. */
function formatAddress(address: string, port: number | undefined): string {
  return address.includes(':') ? `[${address}]:${port ?? 0}` : `${address}:${port ?? 0}`;
}
