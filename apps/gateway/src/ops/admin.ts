// The admin HTTP server: Prometheus metrics, liveness and readiness, on a listener of its own so
// that no Postgres client ever reaches it and a slow scraper cannot hold up the data path.
// GET /metrics  prom-client text format
// GET /healthz  200 while the process runs
// GET /readyz   200 while readiness() says so, else 503 with the reasons as JSON (the NLB health
//               check; 503 during drain)
// GET /sessions[?tenant=id], DELETE /sessions/:id   the live sessions, and ending one with FATAL
//               57P01; a Bearer token of GATEWAY_ADMIN_TOKENS required (none set: 403)
// POST /sessions/:id/trace, POST /tenants/:id/trace   a protocol trace of one session, or of a
//               tenant's next connections, for a bounded time; same token
// Behind a load balancer that sends PROXY protocol headers, its health checks carry one here too.
// Map: docs/architecture.md, "Drain and shutdown".
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { once } from 'node:events';
import type { AddressInfo, Socket } from 'node:net';
import type { ListenAddress, ProxyProtocolMode } from '../config/index.ts';
import type { Logger, ProtocolTraceOptions } from '../telemetry/index.ts';
import { readProxyHeader, type ProxyHeaderMode } from '../edge/index.ts';
import { ProxyHeaderError, ProxyHeaderFailure } from '../errors.ts';
import { READY, type ReadinessState } from './readiness.ts';
import { bearerToken, KnownTokens } from '@tenantgate/runtime';
import type { SessionInfo } from '../session/index.ts';

/** The sessions the admin port shows and ends: this process's, or every worker's through the primary. */
export interface AdminSessions {
  list(tenantId: string | undefined): Promise<readonly SessionInfo[]>;
  /** How many sessions had that id (0 or 1). */
  terminate(id: string): Promise<number>;
  /** Traces a live session; how many sessions had that id (0 or 1). */
  trace(id: string, options: ProtocolTraceOptions): Promise<number>;
  /** Traces the tenant's next `connections` connections in each process; how many processes took it. */
  traceTenant(tenantId: string, connections: number, options: ProtocolTraceOptions): Promise<number>;
}

/** Bounds of a trace request: long enough to catch a reconnecting client, short enough to forget. */
export const TRACE_DEFAULT_SECONDS = 60;
export const TRACE_MAX_SECONDS = 3600;
export const TRACE_MAX_CONNECTIONS = 1000;
/** A trace request body is a few fields. */
const MAX_BODY_BYTES = 4096;

/** What /metrics serves: a prom-client Registry, or an adapter over a cluster aggregator. */
export interface MetricsSource {
  readonly contentType: string;
  metrics(): Promise<string>;
}

export interface AdminServerOptions {
  readonly listen: ListenAddress;
  readonly metrics: MetricsSource;
  /** Asked on every /readyz; throwing, or answering late, means not ready. */
  readonly readiness: () => boolean | ReadinessState | Promise<boolean | ReadinessState>;
  readonly logger: Logger;
  /** How long readiness() may take; READINESS_TIMEOUT_MS when absent. */
  readonly readinessTimeoutMs?: number;
  /**
   * A PROXY protocol header (v2 or v1) before the HTTP request; `off` when absent. Behind an NLB
   * with proxy protocol on, give `optional`: its health checks carry a header, while local
   * scrapes and the container health check do not.
   */
  readonly proxyProtocol?: ProxyProtocolMode;
  /** The session endpoints' data; absent: they answer 404. */
  readonly sessions?: AdminSessions;
  /** Bearer tokens of the session endpoints (GATEWAY_ADMIN_TOKENS); empty: they answer 403. */
  readonly tokens?: readonly string[];
}

export interface AdminServer {
  /** The bound address (the real port when `listen.port` was 0). */
  readonly address: ListenAddress;
  /** Stops listening and drops open connections, keep-alive ones included. Idempotent. */
  close(): Promise<void>;
}

/** A readiness check that hangs must not hang the health check: it is answered as not ready. */
export const READINESS_TIMEOUT_MS = 2000;

const TEXT = 'text/plain; charset=utf-8';
const JSON_TYPE = 'application/json; charset=utf-8';
// Scrapers and load balancer health checks need a handful of sockets; more is a misbehaving peer.
const MAX_CONNECTIONS = 64;
/** As headersTimeout: the PROXY header comes just before the request, in the same segment as a rule. */
const PROXY_HEADER_TIMEOUT_MS = 5_000;

interface Reply {
  readonly status: number;
  readonly contentType: string;
  readonly body: string;
  readonly headers?: Readonly<Record<string, string>>;
}

type Route = (options: AdminServerOptions) => Reply | Promise<Reply>;

const ROUTES: ReadonlyMap<string, Route> = new Map<string, Route>([
  ['/metrics', async ({ metrics }) => ({ status: 200, contentType: metrics.contentType, body: await metrics.metrics() })],
  ['/healthz', () => ({ status: 200, contentType: TEXT, body: 'ok\n' })],
  ['/readyz', async (options) => readinessReply(await isReady(options))],
]);

export async function startAdminServer(options: AdminServerOptions): Promise<AdminServer> {
  const tokens = new KnownTokens(options.tokens ?? []);
  const server = createServer({ requestTimeout: 10_000, headersTimeout: 5_000, keepAliveTimeout: 5_000 }, (req, res) =>
    handle(req, res, options, tokens),
  );
  server.maxConnections = MAX_CONNECTIONS;
  const proxyProtocol = options.proxyProtocol ?? 'off';
  const readingHeaders = proxyProtocol === 'off' ? new Set<Socket>() : readProxyHeaders(server, proxyProtocol, options.logger);
  server.listen({ host: options.listen.host, port: options.listen.port });
  await once(server, 'listening');
  const { address, port } = server.address() as AddressInfo;
  options.logger.info({ address, port, proxyProtocol }, 'admin server listening');
  let closing: Promise<void> | undefined;
  return { address: { host: address, port }, close: () => (closing ??= close(server, readingHeaders)) };
}

/**
 * Puts a PROXY header read in front of the HTTP parser. http.Server attaches its parser to a
 * socket in its own 'connection' listener; that listener is taken off and called once the header
 * is gone, on the bytes after it. The server itself still listens, so its connection limit,
 * header and request timeouts and closeAllConnections all keep working. Returns the sockets
 * whose header is still being read.
 */
function readProxyHeaders(server: Server, mode: ProxyHeaderMode, logger: Logger): Set<Socket> {
  const serveHttp = server.listeners('connection') as ((socket: Socket) => void)[];
  server.removeAllListeners('connection');
  const reading = new Set<Socket>();
  server.on('connection', (socket: Socket) => {
    reading.add(socket);
    readProxyHeader(socket, { mode, timeoutMs: PROXY_HEADER_TIMEOUT_MS }).then(
      () => {
        reading.delete(socket);
        for (const listener of serveHttp) listener.call(server, socket);
        // The header reader left the socket paused with the request pushed back: the parser reads it now.
        socket.resume();
      },
      (err: unknown) => {
        reading.delete(socket);
        logHeaderFailure(err, socket, logger);
      },
    );
  });
  return reading;
}

/** The one log line of an admin connection closed for its PROXY header (it got no HTTP reply). */
function logHeaderFailure(err: unknown, socket: Socket, logger: Logger): void {
  const fields = { err, remote: `${socket.remoteAddress ?? ''}:${socket.remotePort ?? 0}` };
  if (!(err instanceof ProxyHeaderError)) return logger.error(fields, 'admin connection failed');
  if (err.failure === ProxyHeaderFailure.Closed) return logger.debug(fields, 'admin client left before its PROXY protocol header');
  logger.warn(fields, 'admin connection closed: no valid PROXY protocol header');
}

function handle(req: IncomingMessage, res: ServerResponse, options: AdminServerOptions, tokens: KnownTokens): void {
  const path = (req.url ?? '/').split('?', 1)[0] ?? '/';
  if (options.sessions !== undefined && (path === '/sessions' || path.startsWith('/sessions/') || path.startsWith('/tenants/'))) {
    sessionsRoute(req, path, options.sessions, tokens).then(
      (reply) => send(res, reply),
      (err: unknown) => {
        options.logger.error({ err, path }, 'admin request failed');
        send(res, json(500, { error: 'internal error' }));
      },
    );
    return;
  }
  const route = ROUTES.get(path);
  if (route === undefined) return send(res, text(404, 'not found\n'));
  if (req.method !== 'GET' && req.method !== 'HEAD') {
    res.setHeader('allow', 'GET, HEAD');
    return send(res, text(405, 'method not allowed\n'));
  }
  Promise.resolve()
    .then(() => route(options))
    .then(
      (reply) => send(res, reply),
      (err: unknown) => {
        options.logger.error({ err, path }, 'admin request failed');
        send(res, text(500, 'internal error\n'));
      },
    );
}

async function isReady(options: AdminServerOptions): Promise<ReadinessState> {
  const { readiness, logger, readinessTimeoutMs = READINESS_TIMEOUT_MS } = options;
  let timer: NodeJS.Timeout | undefined;
  const timedOut = new Promise<'timeout'>((resolve) => {
    timer = setTimeout(resolve, readinessTimeoutMs, 'timeout');
  });
  try {
    const ready = await Promise.race([Promise.resolve().then(readiness), timedOut]);
    if (ready === 'timeout') {
      logger.warn({ timeoutMs: readinessTimeoutMs }, 'readiness check timed out');
      return notReady('the readiness check did not answer in time');
    }
    if (typeof ready !== 'boolean') return ready;
    return ready ? READY : notReady('the gateway is not serving (starting or draining)');
  } catch (err) {
    logger.warn({ err }, 'readiness check failed');
    return notReady('the readiness check failed');
  } finally {
    clearTimeout(timer);
  }
}

function notReady(reason: string): ReadinessState {
  return { ready: false, reasons: [{ reason }] };
}

/** `{"status":"ready"}`, or 503 with `{"status":"not ready","reasons":[{"reason","variable"?}]}`. */
function readinessReply(state: ReadinessState): Reply {
  return state.ready ? json(200, { status: 'ready' }) : json(503, { status: 'not ready', reasons: state.reasons });
}

/** GET /sessions[?tenant=], DELETE /sessions/:id, POST /sessions/:id/trace, POST /tenants/:id/trace, behind a Bearer token. */
async function sessionsRoute(req: IncomingMessage, path: string, sessions: AdminSessions, tokens: KnownTokens): Promise<Reply> {
  if (tokens.size === 0) return json(403, { error: 'the session endpoints are closed: set GATEWAY_ADMIN_TOKENS to open them' });
  if (!tokens.has(bearerToken(req.headers.authorization))) {
    return { ...json(401, { error: 'a Bearer token of GATEWAY_ADMIN_TOKENS is required' }), headers: { 'www-authenticate': 'Bearer' } };
  }
  if (path === '/sessions') {
    if (req.method !== 'GET' && req.method !== 'HEAD') return notAllowed('GET, HEAD');
    const tenant = new URL(req.url ?? '/', 'http://admin').searchParams.get('tenant') ?? undefined;
    return json(200, { sessions: await sessions.list(tenant) });
  }
  const trace = /^\/(sessions|tenants)\/([^/]+)\/trace$/.exec(path);
  if (trace !== null) return req.method === 'POST' ? traceRoute(req, trace[1] as string, trace[2] as string, sessions) : notAllowed('POST');
  if (path.startsWith('/tenants/')) return json(404, { error: 'not found' });
  if (req.method !== 'DELETE') return notAllowed('DELETE');
  const id = path.slice('/sessions/'.length);
  if (!SESSION_ID.test(id) || (await sessions.terminate(id)) === 0) return json(404, { error: `no session "${id}"` });
  return json(200, { id, terminated: true });
}

const SESSION_ID = /^[0-9]+-[0-9]+$/;
const TENANT_ID = /^[a-z0-9-]{1,63}$/;

/** POST /sessions/:id/trace or /tenants/:id/trace with `{"seconds","includeQueries","connections"}` (all optional). */
async function traceRoute(req: IncomingMessage, kind: string, id: string, sessions: AdminSessions): Promise<Reply> {
  const body = await readJson(req);
  if (typeof body === 'string') return json(400, { error: body });
  const request = traceRequest(body, kind === 'tenants');
  if (typeof request === 'string') return json(400, { error: request });
  const options: ProtocolTraceOptions = { until: Date.now() + request.seconds * 1000, includeQueries: request.includeQueries };
  const trace = { until: new Date(options.until).toISOString(), includeQueries: options.includeQueries };
  if (kind === 'sessions') {
    if (!SESSION_ID.test(id) || (await sessions.trace(id, options)) === 0) return json(404, { error: `no session "${id}"` });
    return json(200, { id, trace });
  }
  if (!TENANT_ID.test(id)) return json(404, { error: `no tenant "${id}"` });
  const processes = await sessions.traceTenant(id, request.connections, options);
  return json(200, { tenant: id, trace: { ...trace, connections: request.connections }, processes });
}

interface TraceRequest {
  readonly seconds: number;
  readonly includeQueries: boolean;
  readonly connections: number;
}

/** The request's fields with their defaults, or what is wrong with them. */
function traceRequest(body: unknown, forTenant: boolean): TraceRequest | string {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) return 'the body must be a JSON object';
  const { seconds = TRACE_DEFAULT_SECONDS, includeQueries = false, connections = 1, ...rest } = body as Record<string, unknown>;
  const unknown = Object.keys(rest).concat(forTenant || !('connections' in body) ? [] : ['connections']);
  if (unknown.length > 0) return `unknown field "${unknown[0]}"`;
  if (!isIntegerIn(seconds, 1, TRACE_MAX_SECONDS)) return `"seconds" must be an integer from 1 to ${TRACE_MAX_SECONDS}`;
  if (typeof includeQueries !== 'boolean') return '"includeQueries" must be true or false';
  if (!isIntegerIn(connections, 1, TRACE_MAX_CONNECTIONS)) return `"connections" must be an integer from 1 to ${TRACE_MAX_CONNECTIONS}`;
  return { seconds, includeQueries, connections };
}

function isIntegerIn(value: unknown, min: number, max: number): value is number {
  return Number.isInteger(value) && (value as number) >= min && (value as number) <= max;
}

/** The request's JSON body ({} when empty), or why it cannot be read. */
async function readJson(req: IncomingMessage): Promise<unknown> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > MAX_BODY_BYTES) return `the body must be at most ${MAX_BODY_BYTES} bytes`;
    chunks.push(chunk);
  }
  const text = Buffer.concat(chunks).toString('utf8').trim();
  if (text === '') return {};
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return 'the body is not JSON';
  }
}

function notAllowed(allow: string): Reply {
  return { ...json(405, { error: 'method not allowed' }), headers: { allow } };
}

function json(status: number, body: unknown): Reply {
  return { status, contentType: JSON_TYPE, body: `${JSON.stringify(body)}\n` };
}

function text(status: number, body: string): Reply {
  return { status, contentType: TEXT, body };
}

/** Node leaves the body out of HEAD responses by itself; the headers stay those of GET. */
function send(res: ServerResponse, { status, contentType, body, headers }: Reply): void {
  res.writeHead(status, {
    ...headers,
    'content-type': contentType,
    'content-length': Buffer.byteLength(body),
    'cache-control': 'no-store',
  });
  res.end(body);
}

async function close(server: Server, readingHeaders: ReadonlySet<Socket>): Promise<void> {
  const closed = once(server, 'close');
  server.close();
  server.closeAllConnections();
  // Not yet the HTTP server's to close: still reading their PROXY header.
  for (const socket of readingHeaders) socket.destroy();
  await closed;
}

/**
 * The admin port's mode for the Postgres port's: behind a load balancer that sends PROXY headers,
 * its health checks carry one too, while local scrapes and container health checks do not, so
 * the admin port takes a header when one comes.
 */
export function adminProxyProtocol(postgresPort: ProxyProtocolMode): 'off' | 'optional' {
  return postgresPort === 'off' ? 'off' : 'optional';
}
