// The gateway's Postgres port: accepts TCP connections, runs the client handshake on each, and
// hands clients that named a tenant (or sent a CancelRequest) to the next phase. It bounds the
// number of connections still in the handshake, so a flood of idle or slow clients costs a
// refusal each, not a TLS handshake each. Behind a load balancer, each connection may start with
// a PROXY protocol header (GATEWAY_PROXY_PROTOCOL): its source becomes the client's address,
// when the peer is one of the load balancers (GATEWAY_PROXY_TRUSTED_CIDRS). Any other peer is a
// direct client, and one that sends a header is closed.
// Map: docs/architecture.md, step 1.
import { once } from 'node:events';
import { SqlState } from '@tenantgate/wire';
import { createServer, type AddressInfo, type BlockList, type Server, type Socket } from 'node:net';
import { cidrAllowList, isAddressAllowed } from '@tenantgate/tenancy';
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
import { AddressBuckets, PendingConnections, type PendingSlot } from '../limits/index.ts';

export type ListenerConfig = Pick<
  GatewayConfig,
  'listen' | 'sniSuffixes' | 'allowPlaintext' | 'handshakeTimeoutMs' | 'maxPendingConnections'
> &
  /** Per-address limits; absent: none. */
  Partial<Pick<GatewayConfig, 'maxPendingPerAddress' | 'connectsPerSecondPerAddress' | 'proxyTrustedCidrs'>> & {
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
  /** Connections accepted and not yet spliced or closed (GATEWAY_MAX_PENDING_CONNECTIONS counts these). */
  readonly pendingConnections: number;
  /** Stops accepting; resolves once the handshakes under way have ended (bounded by their timeout). Idempotent. */
  close(): Promise<void>;
}

/**
 * The kernel's queue of connections not yet accepted. Node's default (511) overflows when a
 * few thousand clients connect at once (a fleet reconnecting after a failover): the kernel then
 * drops or resets them before the gateway sees them. Linux caps it at net.core.somaxconn.
 */
const LISTEN_BACKLOG = 4096;

let lastConnectionId = 0;

/** The listener's options with the limits it keeps: what each function below reads. */
interface Edge extends ListenerOptions {
  readonly handshakeOptions: HandshakeOptions;
  /** Handshakes under way, for close() to wait on. */
  readonly handshakes: Map<Socket, Promise<void>>;
  /** Connections not yet spliced, in total and per address. */
  readonly pending: PendingConnections;
  /** New connections per address and second; undefined when off. */
  readonly connectRates: AddressBuckets<'connect'> | undefined;
  /** The peers whose PROXY header is taken; undefined: every peer's. */
  readonly proxyPeers: BlockList | undefined;
}

/** Why a connection is refused before its handshake: each has its own words. */
const Overload = {
  Gateway: 'gateway',
  AddressPending: 'address_pending',
  AddressRate: 'address_rate',
} as const;
type Overload = (typeof Overload)[keyof typeof Overload];

const OVERLOAD_REFUSALS: Readonly<Record<Overload, { readonly detail: string; readonly hint: string; readonly log: string }>> = {
  [Overload.Gateway]: {
    detail: 'The gateway has too many connections in progress.',
    hint: 'Retry in a moment.',
    log: 'connection refused: too many connections in progress',
  },
  [Overload.AddressPending]: {
    detail: 'Your address has too many connections in progress.',
    hint: 'Retry in a moment, with fewer connections at once.',
    log: 'connection refused: too many connections in progress from the address',
  },
  [Overload.AddressRate]: {
    detail: 'Your address opened too many connections in the last second.',
    hint: 'Retry with backoff, or keep connections open in a pool.',
    log: 'connection refused: too many new connections a second from the address',
  },
};

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
  const rate = config.connectsPerSecondPerAddress ?? 0;
  const edge: Edge = {
    ...options,
    handshakeOptions,
    handshakes: new Map(),
    pending: new PendingConnections(config.maxPendingConnections, config.maxPendingPerAddress ?? Number.MAX_SAFE_INTEGER),
    connectRates: rate > 0 ? new AddressBuckets({ perSecond: rate, size: 2 * rate }, ['connect']) : undefined,
    proxyPeers: config.proxyTrustedCidrs === undefined ? undefined : cidrAllowList(config.proxyTrustedCidrs),
  };
  const server = createServer({ noDelay: true, keepAlive: true, keepAliveInitialDelay: 60_000 }, (socket) => accept(socket, edge));
  await listen(server, config.listen, options.reusePort);
  server.on('error', (err) => logger.error({ err }, 'listener error'));
  const { address, port } = server.address() as AddressInfo;
  const proxyProtocol = config.proxyProtocol ?? 'off';
  logger.info({ address, port, tls: contexts !== undefined, proxyProtocol }, 'listening for Postgres clients');
  let closing: Promise<void> | undefined;
  return {
    address: { host: address, port },
    get pendingHandshakes() {
      return edge.handshakes.size;
    },
    get pendingConnections() {
      return edge.pending.size;
    },
    close: () => (closing ??= stop(server, edge.handshakes)),
  };
}

async function listen(server: Server, { host, port }: ListenAddress, reusePort: boolean | undefined): Promise<void> {
  const failed = once(server, 'error');
  // exclusive: a cluster worker binds the port itself (SO_REUSEPORT) instead of taking
  // connections from the primary.
  server.listen({ host, port, backlog: LISTEN_BACKLOG, ...(reusePort === true ? { reusePort, exclusive: true } : {}) });
  await Promise.race([once(server, 'listening'), failed.then(([err]) => Promise.reject(err))]);
  failed.catch(() => undefined);
}

async function stop(server: Server, pending: ReadonlyMap<Socket, Promise<void>>): Promise<void> {
  // Listening stops at once; server.close's callback would also wait for every session, so it is not awaited.
  server.close();
  await Promise.allSettled(pending.values());
}

function accept(socket: Socket, edge: Edge): void {
  if (socket.remoteAddress === undefined) {
    // Gone before we saw it: nothing to say to it, nothing to count.
    socket.destroy();
    return;
  }
  const peer = { address: clientAddressOf(socket.remoteAddress), port: socket.remotePort ?? 0 };
  const slot = edge.pending.enter();
  const connection = newConnection(edge.logger, ++lastConnectionId, peer, process.hrtime.bigint(), slot ?? NO_SLOT);
  if (slot === undefined) return refuseOverload(socket, edge, connection, Overload.Gateway);
  const mode = edge.config.proxyProtocol ?? 'off';
  // Behind a load balancer the client's address comes with the PROXY header: it is checked then.
  if (mode === 'off') {
    const overload = admitAddress(edge, slot, peer.address);
    if (overload !== undefined) return refuseOverload(socket, edge, connection, overload);
  }
  const release = () => edge.handshakes.delete(socket);
  // With PROXY protocol off nothing is added to a connection's path: no header read, no timer.
  const settled =
    mode === 'off'
      ? handshake(socket, edge, connection, release)
      : handshakeBehindProxy(socket, peerMode(edge, mode, peer.address), edge, connection, release);
  edge.handshakes.set(socket, settled);
}

/** A peer that is not a trusted load balancer is a direct client: a header from it would be a lie. */
function peerMode(edge: Edge, mode: ProxyHeaderMode, peer: string): ProxyHeaderMode | 'untrusted' {
  return edge.proxyPeers === undefined || isAddressAllowed(edge.proxyPeers, peer) ? mode : 'untrusted';
}

/** A connection refused at accept holds no slot; this one stands in for it. */
const NO_SLOT: PendingSlot = { bind: () => false, release: () => {} };

/** The per-address limits for a connection from `address`: its share of the pending ones, then a connect token. */
function admitAddress(edge: Edge, slot: PendingSlot, address: string): Overload | undefined {
  if (!slot.bind(address)) return Overload.AddressPending;
  if (edge.connectRates !== undefined && !edge.connectRates.take(address, 'connect')) return Overload.AddressRate;
  return undefined;
}

function newConnection(logger: Logger, id: number, client: Endpoint, acceptedAt: bigint, pending: PendingSlot): Connection {
  return { id, log: connectionLogger(logger, { conn: id, client: formatAddress(client.address, client.port) }), acceptedAt, pending };
}

/** The handshake, then the next phase or the one log line of its failure. `client` overrides the socket's address. */
function handshake(
  socket: Socket,
  edge: Edge,
  connection: Connection,
  release: () => void,
  client?: Endpoint,
  handshakeOptions: HandshakeOptions = edge.handshakeOptions,
): Promise<void> {
  return performHandshake(socket, handshakeOptions).then(
    (result) => {
      release();
      dispatch(client === undefined ? result : { ...result, clientAddress: client.address, clientPort: client.port }, edge, connection);
    },
    (error: unknown) => {
      release();
      connection.pending.release();
      reportFailure(error, edge.metrics, connection.log);
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
  mode: ProxyHeaderMode | 'untrusted',
  edge: Edge,
  connection: Connection,
  release: () => void,
): Promise<void> {
  const { handshakeTimeoutMs } = edge.config;
  const startedAt = performance.now();
  let header: ProxyHeader | undefined;
  try {
    header = await readProxyHeader(socket, { mode: mode === 'untrusted' ? 'optional' : mode, timeoutMs: handshakeTimeoutMs });
    if (mode === 'untrusted' && header !== undefined) {
      socket.destroy();
      throw new ProxyHeaderError(ProxyHeaderFailure.Untrusted, 'a PROXY protocol header from a peer outside GATEWAY_PROXY_TRUSTED_CIDRS');
    }
  } catch (error) {
    release();
    connection.pending.release();
    return reportHeaderFailure(error, mode, edge.metrics, connection.log);
  }
  const client = clientOf(header);
  const proxied =
    client === undefined ? connection : newConnection(edge.logger, connection.id, client, connection.acceptedAt, connection.pending);
  const overload = admitAddress(edge, connection.pending, client?.address ?? clientAddressOf(socket.remoteAddress ?? ''));
  if (overload !== undefined) {
    release();
    return refuseOverload(socket, edge, proxied, overload);
  }
  if (header !== undefined) {
    const proxy = formatAddress(socket.remoteAddress ?? '', socket.remotePort);
    proxied.log.debug({ proxy, header: header.kind, version: header.version }, 'PROXY protocol header');
  }
  const timeoutMs = Math.max(1, Math.ceil(handshakeTimeoutMs - (performance.now() - startedAt)));
  const settled = handshake(socket, edge, proxied, release, client, { ...edge.handshakeOptions, timeoutMs });
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
  [ProxyHeaderFailure.Untrusted]: ConnectionOutcome.Refused,
};

/** The one log line of a connection closed for its PROXY header (no reply: the peer is the load balancer), and its count. */
function reportHeaderFailure(error: unknown, mode: ProxyHeaderMode | 'untrusted', metrics: GatewayMetrics, log: Logger): void {
  if (!(error instanceof ProxyHeaderError)) return reportFailure(error, metrics, log);
  const outcome = HEADER_FAILURE_OUTCOMES[error.failure];
  metrics.connections.inc({ outcome });
  const fields = { outcome, reason: error.message, proxyProtocol: mode };
  switch (error.failure) {
    case ProxyHeaderFailure.Closed:
      return log.debug(fields, 'client left before its PROXY protocol header');
    case ProxyHeaderFailure.Timeout:
      return logClientEvent(log, 'info', fields, 'connection closed: no PROXY protocol header in time');
    case ProxyHeaderFailure.Untrusted:
      // Someone who is not the load balancer claims to speak for a client: a probe, or a balancer missing from the list.
      return logClientEvent(log, 'warn', fields, 'connection closed: PROXY protocol header from an untrusted peer');
    default:
      // Often a deployment fault (the load balancer not sending headers, or clients bypassing it): warn.
      return logClientEvent(log, 'warn', fields, 'connection closed: invalid PROXY protocol header');
  }
}

/**
 * Above a cap, the client gets 53300 at once, before any read or TLS work. It arrives where
 * the client expects 'S': libpq up to 16 shows it, 17 reports an error during the SSL exchange.
 */
function refuseOverload(socket: Socket, edge: Edge, connection: Connection, overload: Overload): void {
  connection.pending.release();
  const words = OVERLOAD_REFUSALS[overload];
  const refusal = new Refusal(SqlState.TooManyConnections, 'too many connections', { detail: words.detail, hint: words.hint });
  sendRefusal(socket, refusal, { metrics: edge.metrics, graceMs: edge.refusalGraceMs });
  edge.metrics.connections.inc({ outcome: ConnectionOutcome.Refused });
  logClientEvent(connection.log, 'warn', { outcome: ConnectionOutcome.Refused, sqlstate: refusal.sqlState, limit: overload }, words.log);
}

function dispatch(result: HandshakeResult, options: Edge, connection: Connection): void {
  try {
    if (result.kind === 'cancel') {
      connection.pending.release();
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
    // The session releases the connection's pending slot once it is spliced or refused.
    options.sessions.serve(result, connection);
  } catch (err) {
    connection.pending.release();
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
