// One client from its StartupMessage to the splice (DESIGN.md data path steps 6–11): resolve the
// tenant, admit, authenticate at the edge while the backend's TCP and TLS are opened in
// parallel, rewrite the startup packet, log into the backend with the recovered ClientKey, hand
// the backend's startup messages over with the gateway's own cancel key, and splice.
import type { SecureContext } from 'node:tls';
import type { Tenant, TenantRole } from '@tenantgate/tenancy';
import { serializeAuthenticationOk, serializeBackendKeyData, serializeNoticeResponse, serializeParameterStatus, serializeReadyForQuery, SqlState, MAX_STARTUP_PACKET_LENGTH, startupPacketLength } from '@tenantgate/wire';
import type { Admission, AdmissionTicket } from './admission.ts';
import { abandonBackend, openBackend, startBackendSession, type BackendAuth, type BackendSession, type OpenedBackend } from '../backend/connect.ts';
import { BackendError, BackendStartupError, GatewaySetupError } from '../errors.ts';
import { backendTlsIdentity, type BackendTlsContexts, type BackendTlsDefaults, type TlsSessionCache } from '../backend/tls.ts';
import type { CancelKey, CancelRegistry, CancelTarget } from '../cancel/registry.ts';
import type { ClientStartup } from '../edge/handshake.ts';
import { authenticateClient, collectPassword } from './edge-auth.ts';
import type { Connection } from '../edge/listener.ts';
import { ConnectionOutcome, Phase, type GatewayMetrics } from '../telemetry/metrics.ts';
import { sendRefusal } from '../refusal.ts';
import type { ClientCertificateStore } from '../backend/client-certificates.ts';
import { splice, type Splice } from './splice.ts';
import { rewriteStartup } from './startup-rewrite.ts';
import { type TenantDirectory } from '../tenants/directory.ts';
import { EdgeAuthError, Refusal, TenantDirectoryUnreachableError } from '../errors.ts';

/** Everything a session needs from the gateway, shared by all of them. */
export interface SessionContext {
  readonly tenants: TenantDirectory;
  readonly admission: Admission;
  readonly cancels: CancelRegistry;
  readonly backendContexts: BackendTlsContexts;
  readonly backendSessions: TlsSessionCache;
  /** Undefined when neither GATEWAY_BACKEND_CA nor a default client certificate is configured. */
  readonly backendDefaults: Partial<BackendTlsDefaults>;
  readonly clientCertificates: ClientCertificateStore;
  readonly mockKey: Buffer;
  readonly metrics: GatewayMetrics;
  readonly timeouts: { readonly authMs: number; readonly backendConnectMs: number };
  /** Live splices, for drain. */
  readonly sessions: Set<Splice>;
  /** Aborted by drain with a 57P01 Refusal: connections still being set up end with it. */
  readonly shutdown: AbortSignal;
}

/** Serves one client; never throws (every failure is told to the client and logged once). */
export async function serveClient(client: ClientStartup, connection: Connection, ctx: SessionContext): Promise<void> {
  const { socket } = client;
  const aborted = new AbortController();
  const onError = (error: Error): void => aborted.abort(error);
  const onClose = (): void => aborted.abort(new Error('the client closed the connection'));
  socket.on('error', onError);
  socket.once('close', onClose);
  try {
    await run(client, connection, ctx, AbortSignal.any([aborted.signal, ctx.shutdown]));
  } catch (error) {
    fail(client, connection, ctx, error);
    return;
  }
  // Spliced: the splice listens to the socket now, and nothing waits on the signal any more.
  // An idle session then holds neither the controller nor these closures, and its close builds
  // no Error that nobody reads.
  socket.off('error', onError);
  socket.off('close', onClose);
}

async function run(client: ClientStartup, connection: Connection, ctx: SessionContext, signal: AbortSignal): Promise<void> {
  const tenant = await timed(ctx, Phase.Resolve, () => resolveTenant(ctx, client.tenantId, signal));
  const ticket = timed(ctx, Phase.Admit, () => ctx.admission.admit(tenant, client.clientAddress));
  try {
    await connect(client, connection, ctx, signal, tenant, ticket);
  } catch (error) {
    ticket.release();
    throw error;
  }
}

async function connect(
  client: ClientStartup,
  connection: Connection,
  ctx: SessionContext,
  signal: AbortSignal,
  tenant: Tenant,
  ticket: AdmissionTicket,
): Promise<void> {
  const user = client.startup.parameters.get('user') as string;
  const role = tenant.roles.find((r) => r.name === user);
  const secureContext = await backendContext(ctx, tenant);
  // The backend's TCP and TLS run while the client authenticates; nothing is sent to it before.
  const opening = openBackend({
    ...backendAddress(tenant),
    secureContext,
    sessionCache: ctx.backendSessions,
    connectTimeoutMs: ctx.timeouts.backendConnectMs,
    signal,
  });
  opening.catch(() => {}); // awaited below; an early failure must not be an unhandled rejection
  const credentials = await authenticate(client, ctx, signal, tenant, role, user, opening);
  // Passthrough names roles only to rewrite them: any user the backend accepts may log in.
  const rewriteRole = role ?? { name: user };
  const session = await startBackend(ctx, signal, tenant, rewriteRole, client, opening, credentials);
  await handOver(client, connection, ctx, tenant, session, credentials, ticket);
}

/** What the client's authentication yields for the backend leg. */
interface Credentials {
  readonly backendAuth: BackendAuth;
  /** Bytes the client sent after authenticating: the splice forwards them first. */
  readonly leftover: Buffer;
}

/**
 * The gateway checks the client's SCRAM proof (authMode `gateway`), or asks for the password
 * that the backend will check (authMode `passthrough`).
 */
async function authenticate(
  client: ClientStartup,
  ctx: SessionContext,
  signal: AbortSignal,
  tenant: Tenant,
  role: TenantRole | undefined,
  user: string,
  opening: Promise<OpenedBackend>,
): Promise<Credentials> {
  const common = { roleName: user, timeoutMs: ctx.timeouts.authMs, signal, metrics: ctx.metrics };
  try {
    return await timed(ctx, Phase.Auth, async (): Promise<Credentials> => {
      if (tenant.authMode === 'passthrough') {
        const { password, leftover } = await collectPassword(client, common);
        return { backendAuth: { kind: 'password', password }, leftover };
      }
      const auth = await authenticateClient(client, { ...common, role, tenantId: tenant.id, mockKey: ctx.mockKey });
      return { backendAuth: { kind: 'scram-key', clientKey: auth.clientKey, serverKey: auth.serverKey }, leftover: auth.leftover };
    });
  } catch (error) {
    opening.then((opened) => abandonBackend(opened), () => {});
    throw error;
  }
}

async function startBackend(
  ctx: SessionContext,
  signal: AbortSignal,
  tenant: Tenant,
  role: Pick<TenantRole, 'name' | 'backendUser'>,
  client: ClientStartup,
  opening: Promise<OpenedBackend>,
  credentials: Credentials,
): Promise<BackendSession> {
  const auth = credentials.backendAuth;
  const given = client.startup.parameters;
  let parameters: Map<string, string> | undefined;
  try {
    parameters = rewriteStartup({ parameters: given, tenant, role });
    checkRewrittenLength(parameters);
    const opened = await opening;
    observe(ctx, Phase.BackendConnect, opened.timings.connectMs / 1000);
    observe(ctx, Phase.BackendTls, opened.timings.tlsMs / 1000);
    return await startBackendSession(opened, {
      parameters,
      auth,
      timeoutMs: ctx.timeouts.backendConnectMs,
      signal,
    });
  } catch (error) {
    opening.then((opened) => abandonBackend(opened), () => {});
    if (error instanceof BackendStartupError && parameters !== undefined) {
      const clientUser = given.get('user') as string;
      error.showClientNames([
        [parameters.get('user') ?? '', clientUser],
        [parameters.get('database') ?? '', given.get('database') ?? clientUser],
      ]);
    }
    throw error;
  } finally {
    // The ClientKey logs into any server that holds this secret, the password anywhere: keep
    // them no longer than this.
    if (auth.kind === 'scram-key') auth.clientKey.fill(0);
    if (auth.kind === 'password') auth.password.fill(0);
  }
}

async function handOver(
  client: ClientStartup,
  connection: Connection,
  ctx: SessionContext,
  tenant: Tenant,
  session: BackendSession,
  credentials: Credentials,
  ticket: AdmissionTicket,
): Promise<void> {
  const target: CancelTarget = {
    tenantId: tenant.id,
    ...backendAddress(tenant),
    processId: session.backendKey?.processId ?? 0,
    secretKey: session.backendKey?.secretKey ?? Buffer.alloc(4),
  };
  let key: CancelKey;
  try {
    key = await ctx.cancels.register({ target, clientMinorVersion: client.startup.minorVersion });
  } catch (error) {
    session.socket.destroy();
    throw error;
  }
  if (client.socket.destroyed || ctx.shutdown.aborted) {
    void ctx.cancels.unregister(key).catch(() => {});
    session.socket.destroy();
    throw client.socket.destroyed ? new Error('the client closed the connection') : ctx.shutdown.reason;
  }
  // The hand-over ends with ReadyForQuery: the splice's tracker learns the status from it.
  const spliced = splice(client.socket, session.socket, {
    initialToClient: [handoverBytes(client, session, key), session.leftover],
    initialToBackend: [credentials.leftover],
    metrics: ctx.metrics,
    onClose: (reason, error) => {
      ctx.sessions.delete(spliced);
      ticket.release();
      void ctx.cancels.unregister(key).catch(() => {});
      connection.log.info({ reason, err: error, bytes: spliced.bytes }, 'session closed');
    },
  });
  ctx.sessions.add(spliced);
  ctx.metrics.connections.inc({ outcome: ConnectionOutcome.Session });
  observe(ctx, Phase.Total, Number(process.hrtime.bigint() - connection.acceptedAt) / 1e9);
  connection.log.info({ user: client.startup.parameters.get('user'), backendAuth: session.authMethod }, 'session started');
}

/**
 * The client's packet was within PostgreSQL's limit; the tenant's user and database may push the
 * rewritten one over, and the backend applies the same limit.
 */
function checkRewrittenLength(parameters: ReadonlyMap<string, string>): void {
  if (startupPacketLength(parameters) > MAX_STARTUP_PACKET_LENGTH) {
    throw new Refusal(SqlState.ProtocolViolation, 'invalid length of startup packet once the gateway adds the tenant\'s user and database', {
      hint: 'Send fewer or shorter startup parameters (options, application_name).',
    });
  }
}

/** AuthenticationOk, the backend's notices and ParameterStatus, our BackendKeyData, ReadyForQuery. */
function handoverBytes(client: ClientStartup, session: BackendSession, key: CancelKey): Buffer {
  return Buffer.concat([
    serializeAuthenticationOk(),
    ...session.notices.map((fields) => serializeNoticeResponse(fields)),
    ...session.parameterStatus.map(([name, value]) => serializeParameterStatus(name, value)),
    serializeBackendKeyData(key.processId, key.secretKey, client.startup.minorVersion),
    serializeReadyForQuery(session.transactionStatus),
  ]);
}

async function resolveTenant(ctx: SessionContext, tenantId: string, signal: AbortSignal): Promise<Tenant> {
  const lookup = await ctx.tenants.resolve(tenantId, signal);
  if (lookup.kind === 'unknown') {
    throw new Refusal(SqlState.ConnectionRejected, `tenant "${tenantId}" does not exist`, {
      hint: 'Check the host name of your connection string: <tenant>.<domain>.',
    });
  }
  return lookup.tenant;
}

/** The tenant's CA (or the default) and client certificate (or the default), built once. */
export async function backendContext(ctx: Pick<SessionContext, 'backendDefaults' | 'clientCertificates' | 'backendContexts'>, tenant: Tenant): Promise<SecureContext> {
  const reference = tenant.backend.clientCertificate;
  const clientCertificate = reference === undefined ? ctx.backendDefaults.clientCertificate : await ctx.clientCertificates.get(reference);
  const caPem = tenant.backend.caCertificate ?? ctx.backendDefaults.caPem;
  if (clientCertificate === undefined || caPem === undefined) {
    throw new GatewaySetupError(`tenant "${tenant.id}" has no backend CA or client certificate, and the gateway has no default`);
  }
  return ctx.backendContexts.get(backendTlsIdentity({ caCertificate: caPem }, { caPem, clientCertificate }, clientCertificate));
}

/** Tells the client why (unless it already was, or is gone) and logs once. */
function fail(client: ClientStartup, connection: Connection, ctx: SessionContext, error: unknown): void {
  const { socket } = client;
  const log = connection.log;
  if (error instanceof EdgeAuthError) {
    // The client has been told already; the message says which case it was (for us, not it).
    ctx.metrics.connections.inc({ outcome: error.outcome });
    log.info({ outcome: error.outcome, reason: error.message }, 'authentication failed');
    return;
  }
  if (socket.destroyed) {
    ctx.metrics.connections.inc({ outcome: ConnectionOutcome.ClientClosed });
    log.info({ reason: (error as Error).message }, 'client closed before the session started');
    return;
  }
  // Whatever failed while the gateway was shutting down, the client is told it is shutting down.
  const reason = ctx.shutdown.aborted && ctx.shutdown.reason instanceof Refusal ? ctx.shutdown.reason : error;
  if (reason instanceof Refusal) {
    ctx.metrics.connections.inc({ outcome: ConnectionOutcome.Refused });
    log.info({ sqlstate: reason.sqlState, reason: reason.message }, 'refused');
    sendRefusal(socket, reason, { metrics: ctx.metrics });
  } else if (reason instanceof BackendError) {
    ctx.metrics.connections.inc({ outcome: ConnectionOutcome.Refused });
    log.warn({ sqlstate: reason.sqlState, code: reason.code, detail: reason.logDetail }, 'backend failed');
    sendRefusal(socket, reason, { metrics: ctx.metrics });
  } else if (reason instanceof TenantDirectoryUnreachableError) {
    ctx.metrics.connections.inc({ outcome: ConnectionOutcome.Refused });
    log.warn({ detail: reason.logDetail }, 'tenant directory unreachable');
    sendRefusal(socket, new Refusal(SqlState.UnableToConnect, reason.message, { hint: 'Retry in a moment.' }), { metrics: ctx.metrics });
  } else {
    ctx.metrics.connections.inc({ outcome: ConnectionOutcome.Error });
    log.error({ err: reason }, 'session setup failed');
    const refusal = new Refusal(SqlState.UnableToConnect, 'the gateway could not connect you to the tenant database', {
      hint: 'Retry in a moment; if it persists, contact support.',
    });
    sendRefusal(socket, refusal, { metrics: ctx.metrics });
  }
}

/** Where the tenant's backend is, as openBackend and the cancel registry take it. */
function backendAddress(tenant: Tenant): { host: string; port: number; serverName?: string } {
  const { host, port, serverName } = tenant.backend;
  return serverName === undefined ? { host, port } : { host, port, serverName };
}

function observe(ctx: SessionContext, phase: Phase, seconds: number): void {
  ctx.metrics.phaseDuration.observe({ phase }, seconds);
}

function timed<T>(ctx: SessionContext, phase: Phase, fn: () => T): T {
  const start = performance.now();
  const done = () => observe(ctx, phase, (performance.now() - start) / 1000);
  const result = fn();
  if (result instanceof Promise) return result.finally(done) as T;
  done();
  return result;
}
