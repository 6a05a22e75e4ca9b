// One client from its StartupMessage to the splice (docs/architecture.md, step 6): resolve the
// tenant, admit, authenticate at the edge while the backend's TCP and TLS are opened in
// parallel, rewrite the startup packet, log into the backend with the recovered ClientKey, hand
// the backend's startup messages over with the gateway's own cancel key, and splice.
import { AuthMode, authModeOf, TenantStatus, usesCertificates, type Tenant, type TenantRole } from '@tenantgate/tenancy';
import {
  serializeAuthenticationOk,
  serializeBackendKeyData,
  serializeNoticeResponse,
  serializeParameterStatus,
  serializeReadyForQuery,
  SqlState,
  MAX_STARTUP_PACKET_LENGTH,
  startupPacketLength,
} from '@tenantgate/wire';
import type { Admission, AdmissionTicket } from './admission.ts';
import type { Connection, SessionClient } from './client.ts';
import { checkClientCertificate } from './client-certificate.ts';
import { authenticateClient, collectPassword } from './edge-auth.ts';
import { SPLICE_CLOSE_GRACE_MS, splice, type Splice } from './splice.ts';
import { checkReplication } from './replication.ts';
import { rewriteStartup } from './startup-rewrite.ts';
import { wakeTenant } from './wake.ts';
import {
  abandonBackend,
  openBackend,
  startBackendSession,
  type BackendAuth,
  type BackendSession,
  type OpenedBackend,
} from '../backend/index.ts';
import { backendAddress, type BackendTls } from '../backend/index.ts';
import type { CancelKey, CancelRegistry, CancelTarget } from '../cancel/index.ts';
import type { TenantDirectory } from '../tenants/index.ts';
import {
  ConnectionOutcome,
  endWithError,
  inSpan,
  logClientEvent,
  Phase,
  recordPhaseSpan,
  recordSessionEnd,
  SpanAttribute,
  startConnectionSpan,
  startPhaseSpan,
  type GatewayMetrics,
  type Logger,
  ProtocolTrace,
  type ProtocolTraceOptions,
  TenantTraces,
} from '../telemetry/index.ts';
import type { Span } from '@opentelemetry/api';
import { AddressBuckets } from '../limits/index.ts';
import { sendRefusal } from '../refusal.ts';
import { BackendError, BackendStartupError, EdgeAuthError, Refusal, TenantDirectoryUnreachableError } from '../errors.ts';

/** What every session shares: the gateway's parts, built once. */
export interface SessionsOptions {
  readonly tenants: TenantDirectory;
  readonly admission: Admission;
  readonly cancels: CancelRegistry;
  /** Sends a session's backend its own CancelRequest (cancel/forwarding.ts CancelForwarding `cancel`). */
  readonly cancelBackend: (target: CancelTarget) => Promise<void>;
  readonly backendTls: BackendTls;
  /** Seeds SCRAM mock salts for unknown roles (edge-auth.ts). */
  readonly mockKey: Buffer;
  readonly metrics: GatewayMetrics;
  readonly timeouts: { readonly authMs: number; readonly backendConnectMs: number; readonly wakeMs: number };
}

/** The shared parts, the live splices and the shutdown signal, as each step reads them. */
interface Shared extends SessionsOptions {
  /** Live sessions by splice, for drain, the admin port's list and termination. */
  readonly live: Map<Splice, LiveSession>;
  /** Per client address, lookups that found no tenant: each may cost a control-plane request. */
  readonly unknownLookups: AddressBuckets<'unknown'>;
  /** Aborted by drain and close with a 57P01 Refusal: connections still being set up end with it. */
  readonly shutdown: AbortSignal;
  /**
   * When each tenant's sessions were last ended (performance.now()): a session whose set-up began
   * before that is refused at hand-over, so none slips through while it authenticates.
   */
  readonly terminations: Map<string, number>;
  /** Tenants whose next connections are traced (POST /tenants/:id/trace). */
  readonly tenantTraces: TenantTraces;
}

/** A spliced session, as the admin port lists it and an operator ends it. */
interface LiveSession {
  /** `<pid>-<connection id>`: unique across the workers of a gateway. */
  readonly id: string;
  readonly tenantId: string;
  readonly user: string;
  readonly clientAddress: string;
  readonly clientPort: number;
  readonly startedAt: number;
  readonly splice: Splice;
  /** The backend's key, to cancel what it runs when the session is ended. */
  readonly target: CancelTarget;
  /** The connection's logger, for a protocol trace of the session. */
  readonly log: Logger;
}

/** What `GET /sessions` shows of a session. */
export interface SessionInfo {
  readonly id: string;
  readonly tenant: string;
  readonly role: string;
  readonly clientAddress: string;
  readonly clientPort: number;
  readonly startedAt: string;
  readonly ageSeconds: number;
  /** `idle` (ReadyForQuery I, nothing sent since), `in_transaction`, `failed_transaction`, or `active` (a query running). */
  readonly state: 'idle' | 'active' | 'in_transaction' | 'failed_transaction';
  readonly bytes: { readonly toClient: number; readonly toBackend: number };
}

const TERMINATED_REFUSAL = new Refusal(SqlState.AdminShutdown, 'terminating connection due to administrator command', {
  hint: 'Reconnect if you still need a session.',
});
const TERMINATED = TERMINATED_REFUSAL.toErrorResponse();

const SHUTTING_DOWN = new Refusal(SqlState.AdminShutdown, 'terminating connection because the gateway is shutting down', {
  hint: 'Reconnect: another gateway will take the connection.',
});
const SHUTDOWN = SHUTTING_DOWN.toErrorResponse();

/**
 * The gateway's sessions: the edge hands each client that named its tenant to serve(); drain and
 * close end them. Connections still being set up are tracked so drain can wait for them.
 */
export class Sessions {
  readonly #shared: Shared;
  readonly #shutdown = new AbortController();
  readonly #settingUp = new Set<Promise<void>>();

  constructor(options: SessionsOptions) {
    this.#shared = {
      ...options,
      live: new Map(),
      terminations: new Map(),
      unknownLookups: new AddressBuckets(UNKNOWN_TENANTS_PER_ADDRESS, ['unknown']),
      shutdown: this.#shutdown.signal,
      tenantTraces: new TenantTraces(),
    };
  }

  /** Sessions spliced and open. */
  get active(): number {
    return this.#shared.live.size;
  }

  /** Sets the client's session up and splices it; never throws (a failure is told to the client and logged once). */
  serve(client: SessionClient, connection: Connection): void {
    const setup = serveClient(this.#shared, client, connection);
    this.#settingUp.add(setup);
    void setup.finally(() => this.#settingUp.delete(setup));
  }

  /** From now on, connections being set up (and any handed over later) are refused with 57P01. */
  refuseNew(): void {
    if (!this.#shutdown.signal.aborted) this.#shutdown.abort(SHUTTING_DOWN);
  }

  /**
   * Refuses the sessions not yet spliced, then ends the spliced ones: idle ones (last
   * ReadyForQuery 'I') at once with FATAL 57P01 at a message boundary, others as they become
   * idle. At the deadline the rest (a long query, a replication stream) are ended as
   * PostgreSQL's fast shutdown ends them: what runs is cancelled, and the client gets the same
   * FATAL after the whole messages it has; whatever has not closed a grace time later is cut.
   */
  async drain(deadlineMs: number): Promise<void> {
    this.refuseNew();
    await Promise.all(this.#settingUp);
    const { live } = this.#shared;
    for (const session of live.keys()) session.closeWhenIdle(SHUTDOWN);
    await this.#whileLive(Date.now() + deadlineMs);
    for (const session of live.values()) endSession(this.#shared, session, SHUTDOWN);
    await this.#whileLive(Date.now() + SPLICE_CLOSE_GRACE_MS);
    for (const session of live.keys()) session.destroy();
  }

  async #whileLive(deadline: number): Promise<void> {
    while (this.#shared.live.size > 0 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 50));
  }

  /** The live sessions, of one tenant or all. */
  list(tenantId?: string): SessionInfo[] {
    const now = Date.now();
    const sessions = [...this.#shared.live.values()].filter((s) => tenantId === undefined || s.tenantId === tenantId);
    return sessions.map((s) => ({
      id: s.id,
      tenant: s.tenantId,
      role: s.user,
      clientAddress: s.clientAddress,
      clientPort: s.clientPort,
      startedAt: new Date(s.startedAt).toISOString(),
      ageSeconds: Math.floor((now - s.startedAt) / 1000),
      state: stateOf(s.splice),
      bytes: s.splice.bytes,
    }));
  }

  /**
   * Ends the sessions that `which` picks, as pg_terminate_backend does: a query still running is
   * cancelled on the backend, and the client gets FATAL 57P01 at a message boundary. Returns how
   * many were ended.
   */
  terminate(which: { readonly id: string } | { readonly tenantId: string }): number {
    let ended = 0;
    for (const session of this.#shared.live.values()) {
      if ('id' in which ? session.id !== which.id : session.tenantId !== which.tenantId) continue;
      if (endSession(this.#shared, session, TERMINATED)) ended++;
    }
    // Sessions of the tenant still being set up are refused at hand-over (see handOver). A mark
    // older than any set-up can be (authentication, then the backend) is dropped.
    if ('tenantId' in which) {
      const now = performance.now();
      const { authMs, backendConnectMs, wakeMs } = this.#shared.timeouts;
      const oldest = now - 2 * (authMs + wakeMs + backendConnectMs);
      for (const [tenantId, at] of this.#shared.terminations) if (at < oldest) this.#shared.terminations.delete(tenantId);
      this.#shared.terminations.set(which.tenantId, now);
    }
    return ended;
  }

  /**
   * Traces a live session's messages until `options.until` (its next message of each direction
   * on). Returns how many sessions had that id (0 or 1).
   */
  traceSession(id: string, options: ProtocolTraceOptions): number {
    for (const session of this.#shared.live.values()) {
      if (session.id !== id) continue;
      session.splice.trace(new ProtocolTrace(session.log, options, true));
      return 1;
    }
    return 0;
  }

  /** Traces the tenant's next `connections` connections from their StartupMessage on, until `options.until`. */
  traceTenant(tenantId: string, connections: number, options: ProtocolTraceOptions): void {
    this.#shared.tenantTraces.arm(tenantId, connections, options);
  }

  /** Refuses the sessions being set up and closes every spliced one at once. */
  async close(): Promise<void> {
    this.refuseNew();
    await Promise.all(this.#settingUp);
    for (const session of this.#shared.live.keys()) session.destroy();
  }
}

function stateOf(splice: Splice): SessionInfo['state'] {
  if (splice.idle) return 'idle';
  switch (splice.transactionStatus) {
    case 'T':
      return 'in_transaction';
    case 'E':
      return 'failed_transaction';
    default:
      return 'active';
  }
}

/**
 * Ends a session as pg_terminate_backend does: the client gets `errorResponse` at a message
 * boundary, and a query still running is cancelled on the backend (a failed cancel only means
 * the query runs on until PostgreSQL next writes to the closed session). False when the session
 * was already ending.
 */
function endSession(shared: Shared, session: LiveSession, errorResponse: Buffer): boolean {
  const busy = !session.splice.idle;
  if (!session.splice.terminate(errorResponse)) return false;
  if (busy) shared.cancelBackend(session.target).catch(() => {});
  return true;
}

/** One client while its session is set up: what each step after the tenant check reads. */
interface Attempt {
  readonly client: SessionClient;
  readonly connection: Connection;
  /** Aborts when the client goes away or the gateway shuts down. */
  readonly signal: AbortSignal;
  readonly tenant: Tenant;
  /** The client's `user`, as it sent it. */
  readonly user: string;
  /** The tenant's role of that name; undefined when it has none (passthrough may still log in). */
  readonly role: TenantRole | undefined;
  /** The connection's span: phases go under it, and it ends at hand-over. */
  readonly span: Span;
  /** performance.now() when the set-up began. */
  readonly startedAt: number;
  /** The connection's protocol trace, when its tenant is traced. */
  readonly trace: ProtocolTrace | undefined;
}

async function serveClient(shared: Shared, client: SessionClient, connection: Connection): Promise<void> {
  const { socket } = client;
  const aborted = new AbortController();
  const onError = (error: Error): void => aborted.abort(error);
  const onClose = (): void => aborted.abort(new Error('the client closed the connection'));
  socket.on('error', onError);
  socket.once('close', onClose);
  // The span starts back at accept; what came before this call (TLS, the startup packet) is its tls phase.
  const acceptedMs = Date.now() - Number(process.hrtime.bigint() - connection.acceptedAt) / 1e6;
  const span = startConnectionSpan(acceptedMs, {
    [SpanAttribute.ConnectionId]: connection.id,
    [SpanAttribute.ClientAddress]: client.clientAddress,
    [SpanAttribute.ClientPort]: client.clientPort,
    [SpanAttribute.Tenant]: client.tenantId,
    [SpanAttribute.DbUser]: client.startup.parameters.get('user') ?? '',
  });
  inSpan(span, () => recordPhaseSpan(Phase.Tls, acceptedMs, Date.now()));
  const trace = startTrace(shared, client, connection);
  try {
    await inSpan(span, () => run(shared, client, connection, AbortSignal.any([aborted.signal, shared.shutdown]), span, trace));
  } catch (error) {
    const outcome = fail(shared, client, connection, error);
    trace?.end(`not spliced: ${outcome.outcome}${outcome.sqlState === undefined ? '' : ` ${outcome.sqlState}`}`);
    endWithError(span, error, {
      [SpanAttribute.Outcome]: outcome.outcome,
      ...(outcome.sqlState === undefined ? {} : { [SpanAttribute.DbResponseStatusCode]: outcome.sqlState }),
    });
    return;
  } finally {
    connection.pending.release();
  }
  // Spliced: the splice listens to the socket now, and nothing waits on the signal any more.
  // An idle session then holds neither the controller nor these closures, and its close builds
  // no Error that nobody reads.
  socket.off('error', onError);
  socket.off('close', onClose);
}

/** A trace of the connection when its tenant is traced, with the StartupMessage the handshake read. */
function startTrace(shared: Shared, client: SessionClient, connection: Connection): ProtocolTrace | undefined {
  const options = shared.tenantTraces.take(client.tenantId);
  if (options === undefined) return undefined;
  const trace = new ProtocolTrace(connection.log, options, false);
  trace.startup(client.startup.parameters, client.startup.minorVersion);
  return trace;
}

async function run(
  shared: Shared,
  client: SessionClient,
  connection: Connection,
  signal: AbortSignal,
  span: Span,
  trace: ProtocolTrace | undefined,
): Promise<void> {
  const tenant = await timed(shared, Phase.Resolve, () => resolveTenant(shared, client, signal));
  timed(shared, Phase.Admit, () => {
    shared.admission.check(tenant, client.clientAddress);
    checkReplication(tenant, client.startup.parameters);
  });
  const user = client.startup.parameters.get('user') as string;
  const attempt: Attempt = {
    client,
    connection,
    signal,
    tenant,
    user,
    role: tenant.roles.find((r) => r.name === user),
    span,
    startedAt: performance.now(),
    trace,
  };
  // Within the tenant's small budget, the backend's TCP and TLS run while the client
  // authenticates (nothing is sent to it before); beyond it, they wait for the client's proof.
  // A sleeping tenant's backend is down: it is woken for a client that has logged in, below.
  const sleeping = tenant.status === TenantStatus.Sleeping;
  const early = sleeping ? undefined : shared.admission.earlyOpen(tenant);
  let opening = early === undefined ? undefined : openTenantBackend(shared, attempt);
  let credentials: Credentials | undefined;
  try {
    credentials = await authenticate(shared, attempt).finally(() => early?.release());
    // Only a client that has proven itself spends the tenant's connect rate and a connection slot.
    const ticket = await shared.admission.admit(tenant);
    try {
      const ready = sleeping ? await timed(shared, Phase.Wake, () => woken(shared, attempt)) : attempt;
      opening ??= openTenantBackend(shared, ready);
      const session = await startBackend(shared, ready, opening, credentials);
      await handOver(shared, ready, ticket, session, credentials);
    } catch (error) {
      ticket.release();
      throw error;
    }
  } catch (error) {
    opening?.then(
      (opened) => abandonBackend(opened),
      () => {},
    );
    throw error;
  } finally {
    // The ClientKey logs into any server that holds this secret, the password anywhere: keep
    // them no longer than this.
    const auth = credentials?.backendAuth;
    if (auth?.kind === 'scram-key') auth.clientKey.fill(0);
    if (auth?.kind === 'password') auth.password.fill(0);
  }
}

/** The attempt with the tenant's route once it is awake, which must still admit the client. */
async function woken(shared: Shared, attempt: Attempt): Promise<Attempt> {
  const options = { timeoutMs: shared.timeouts.wakeMs, signal: attempt.signal, log: attempt.connection.log };
  const tenant = await wakeTenant(shared.tenants, attempt.tenant, options);
  shared.admission.check(tenant, attempt.client.clientAddress);
  return { ...attempt, tenant, role: tenant.roles.find((r) => r.name === attempt.user) };
}

/** TCP and TLS to the tenant's backend; awaited later, so a failure meanwhile is not an unhandled rejection. */
function openTenantBackend(shared: Shared, attempt: Attempt): Promise<OpenedBackend> {
  const { tenant, signal } = attempt;
  const startedMs = Date.now();
  const opening = shared.backendTls.contextFor(tenant).then((secureContext) =>
    openBackend({
      ...backendAddress(tenant),
      secureContext,
      minTlsVersion: shared.backendTls.minVersionFor(tenant),
      sessionCache: shared.backendTls.sessions,
      connectTimeoutMs: shared.timeouts.backendConnectMs,
      signal,
    }),
  );
  opening.then(
    ({ timings }) => {
      recordPhaseSpan(Phase.BackendConnect, startedMs, startedMs + timings.connectMs);
      recordPhaseSpan(Phase.BackendTls, startedMs + timings.connectMs, startedMs + timings.connectMs + timings.tlsMs);
    },
    () => {},
  );
  return opening;
}

/** What the client's authentication yields for the backend leg. */
interface Credentials {
  readonly backendAuth: BackendAuth;
  /** Bytes the client sent after authenticating: the splice forwards them first. */
  readonly leftover: Buffer;
}

/**
 * The gateway checks the client's SCRAM proof (authMode `gateway`), asks for the password that
 * the backend will check (`passthrough`), checks its certificate (`certificate`), or both
 * (`certificate+scram`). A certificate login gives the backend leg no key: the backend must log
 * the gateway in by its own client certificate.
 */
async function authenticate(shared: Shared, attempt: Attempt): Promise<Credentials> {
  const { client, tenant, signal } = attempt;
  const common = { roleName: attempt.user, timeoutMs: shared.timeouts.authMs, signal, metrics: shared.metrics, tap: attempt.trace?.client };
  return timed(shared, Phase.Auth, async (): Promise<Credentials> => {
    const mode = authModeOf(tenant, attempt.role);
    if (usesCertificates(mode)) checkClientCertificate(client.socket, tenant, attempt.user);
    if (mode === AuthMode.Certificate) return { backendAuth: { kind: 'none' }, leftover: Buffer.alloc(0) };
    if (mode === AuthMode.Passthrough) {
      const { password, leftover } = await collectPassword(client, common);
      return { backendAuth: { kind: 'password', password }, leftover };
    }
    const auth = await authenticateClient(client, { ...common, role: attempt.role, tenantId: tenant.id, mockKey: shared.mockKey });
    return { backendAuth: { kind: 'scram-key', clientKey: auth.clientKey, serverKey: auth.serverKey }, leftover: auth.leftover };
  });
}

async function startBackend(
  shared: Shared,
  attempt: Attempt,
  opening: Promise<OpenedBackend>,
  credentials: Credentials,
): Promise<BackendSession> {
  const given = attempt.client.startup.parameters;
  // Passthrough names roles only to rewrite them: any user the backend accepts may log in.
  const role = attempt.role ?? { name: attempt.user };
  let parameters: Map<string, string> | undefined;
  try {
    parameters = rewriteStartup({ parameters: given, tenant: attempt.tenant, role });
    checkRewrittenLength(parameters);
    const opened = await opening;
    observe(shared, Phase.BackendConnect, opened.timings.connectMs / 1000);
    observe(shared, Phase.BackendTls, opened.timings.tlsMs / 1000);
    const authSpan = startPhaseSpan(BACKEND_AUTH);
    attempt.trace?.backendStartup(parameters, 0);
    try {
      return await startBackendSession(opened, {
        parameters,
        auth: credentials.backendAuth,
        timeoutMs: shared.timeouts.backendConnectMs,
        signal: attempt.signal,
        tap: attempt.trace?.backend,
      });
    } finally {
      authSpan.end();
    }
  } catch (error) {
    if (error instanceof BackendStartupError && parameters !== undefined) {
      error.showClientNames([
        [parameters.get('user') ?? '', attempt.user],
        [parameters.get('database') ?? '', given.get('database') ?? attempt.user],
      ]);
    }
    throw error;
  }
}

async function handOver(
  shared: Shared,
  attempt: Attempt,
  ticket: AdmissionTicket,
  session: BackendSession,
  credentials: Credentials,
): Promise<void> {
  const { client, connection } = attempt;
  const target: CancelTarget = {
    tenantId: attempt.tenant.id,
    ...backendAddress(attempt.tenant),
    processId: session.backendKey?.processId ?? 0,
    secretKey: session.backendKey?.secretKey ?? Buffer.alloc(4),
  };
  let key: CancelKey;
  try {
    key = await shared.cancels.register({ target, clientMinorVersion: client.startup.minorVersion });
  } catch (error) {
    session.socket.destroy();
    throw error;
  }
  if (client.socket.destroyed || shared.shutdown.aborted) {
    void shared.cancels.unregister(key).catch(() => {});
    session.socket.destroy();
    throw client.socket.destroyed ? new Error('the client closed the connection') : shared.shutdown.reason;
  }
  if ((shared.terminations.get(attempt.tenant.id) ?? -1) >= attempt.startedAt) {
    // The tenant's sessions were ended while this one was being set up: it ends too.
    void shared.cancels.unregister(key).catch(() => {});
    session.socket.destroy();
    throw TERMINATED_REFUSAL;
  }
  // The hand-over ends with ReadyForQuery: the splice's tracker learns the status from it.
  const handover = handoverBytes(client, session, key);
  attempt.trace?.client.wrote(handover);
  const spliced = splice(client.socket, session.socket, {
    initialToClient: [handover, session.leftover],
    initialToBackend: [credentials.leftover],
    metrics: shared.metrics,
    onClose: (reason, error) => {
      recordSessionEnd(attempt.span, {
        [SpanAttribute.CloseReason]: reason,
        [SpanAttribute.BytesToClient]: spliced.bytes.toClient,
        [SpanAttribute.BytesToBackend]: spliced.bytes.toBackend,
      });
      shared.live.delete(spliced);
      ticket.release();
      void shared.cancels.unregister(key).catch(() => {});
      connection.log.info({ reason, err: error, bytes: spliced.bytes }, 'session closed');
    },
  });
  shared.live.set(spliced, {
    id: `${process.pid}-${connection.id}`,
    tenantId: attempt.tenant.id,
    user: attempt.user,
    clientAddress: client.clientAddress,
    clientPort: client.clientPort,
    startedAt: Date.now(),
    splice: spliced,
    target,
    log: connection.log,
  });
  // After the splice's first bytes, which the trace has seen already (the hand-over, and what
  // the legs read).
  if (attempt.trace !== undefined) spliced.trace(attempt.trace);
  shared.metrics.connections.inc({ outcome: ConnectionOutcome.Session });
  attempt.span.setAttribute(SpanAttribute.Outcome, ConnectionOutcome.Session);
  attempt.span.end();
  observe(shared, Phase.Total, Number(process.hrtime.bigint() - connection.acceptedAt) / 1e9);
  connection.log.info({ user: attempt.user, backendAuth: session.authMethod }, 'session started');
}

/**
 * The client's packet was within PostgreSQL's limit; the tenant's user and database may push the
 * rewritten one over, and the backend applies the same limit.
 */
function checkRewrittenLength(parameters: ReadonlyMap<string, string>): void {
  if (startupPacketLength(parameters) > MAX_STARTUP_PACKET_LENGTH) {
    throw new Refusal(SqlState.ProtocolViolation, "invalid length of startup packet once the gateway adds the tenant's user and database", {
      hint: 'Send fewer or shorter startup parameters (options, application_name).',
    });
  }
}

/** AuthenticationOk, the backend's notices and ParameterStatus, our BackendKeyData, ReadyForQuery. */
function handoverBytes(client: SessionClient, session: BackendSession, key: CancelKey): Buffer {
  return Buffer.concat([
    serializeAuthenticationOk(),
    ...session.notices.map((fields) => serializeNoticeResponse(fields)),
    ...session.parameterStatus.map(([name, value]) => serializeParameterStatus(name, value)),
    serializeBackendKeyData(key.processId, key.secretKey, client.startup.minorVersion),
    serializeReadyForQuery(session.transactionStatus),
  ]);
}

/**
 * Lookups of tenants that do not exist, per client address: 20 at once, then 2 a second. Random
 * names each miss every cache and cost a control-plane request; past its allowance an address
 * may still reach every tenant the directory holds, but no longer makes the directory ask.
 */
const UNKNOWN_TENANTS_PER_ADDRESS = { perSecond: 2, size: 20 } as const;

async function resolveTenant(shared: Shared, client: SessionClient, signal: AbortSignal): Promise<Tenant> {
  const { tenantId, clientAddress } = client;
  // The address's allowance first: one map lookup, and for nearly every client the only one.
  if (!shared.unknownLookups.available(clientAddress, 'unknown') && !shared.tenants.isCached(tenantId)) {
    throw new Refusal(SqlState.TooManyConnections, 'too many connections', {
      detail: 'Your address named too many tenants that do not exist.',
      hint: 'Check the host name of your connection string: <tenant>.<domain>.',
    });
  }
  const lookup = await shared.tenants.resolve(tenantId, signal);
  if (lookup.kind === 'unknown') {
    shared.unknownLookups.take(clientAddress, 'unknown');
    throw new Refusal(SqlState.ConnectionRejected, `tenant "${tenantId}" does not exist`, {
      hint: 'Check the host name of your connection string: <tenant>.<domain>.',
    });
  }
  return lookup.tenant;
}

/** How a connection that did not reach the splice ended: for its span. */
interface Failure {
  readonly outcome: ConnectionOutcome;
  /** The SQLSTATE the client was sent, if any. */
  readonly sqlState?: string;
}

/** Tells the client (when it can still hear), counts and logs once; returns how it ended. */
function fail(shared: Shared, client: SessionClient, connection: Connection, error: unknown): Failure {
  const { socket } = client;
  const log = connection.log;
  if (error instanceof EdgeAuthError) {
    // The client has been told already; the message says which case it was (for us, not it).
    shared.metrics.connections.inc({ outcome: error.outcome });
    logClientEvent(log, 'info', { outcome: error.outcome, reason: error.message }, 'authentication failed');
    return { outcome: error.outcome, ...(error.refusal === undefined ? {} : { sqlState: error.refusal.sqlState }) };
  }
  if (socket.destroyed) {
    shared.metrics.connections.inc({ outcome: ConnectionOutcome.ClientClosed });
    log.info({ reason: (error as Error).message }, 'client closed before the session started');
    return { outcome: ConnectionOutcome.ClientClosed };
  }
  // Whatever failed while the gateway was shutting down, the client is told it is shutting down.
  const reason = shared.shutdown.aborted && shared.shutdown.reason instanceof Refusal ? shared.shutdown.reason : error;
  if (reason instanceof Refusal) {
    shared.metrics.connections.inc({ outcome: ConnectionOutcome.Refused });
    logClientEvent(log, 'info', { sqlstate: reason.sqlState, reason: reason.message }, 'refused');
    sendRefusal(socket, reason, { metrics: shared.metrics });
    return { outcome: ConnectionOutcome.Refused, sqlState: reason.sqlState };
  }
  if (reason instanceof BackendError) {
    shared.metrics.connections.inc({ outcome: ConnectionOutcome.Refused });
    log.warn({ sqlstate: reason.sqlState, code: reason.code, detail: reason.logDetail }, 'backend failed');
    sendRefusal(socket, reason, { metrics: shared.metrics });
    return { outcome: ConnectionOutcome.Refused, sqlState: reason.sqlState };
  }
  if (reason instanceof TenantDirectoryUnreachableError) {
    shared.metrics.connections.inc({ outcome: ConnectionOutcome.Refused });
    if (reason.misconfigured !== undefined) {
      const fields = { detail: reason.logDetail, variable: reason.misconfigured };
      logClientEvent(log, 'error', fields, "refused: the control plane refuses the gateway's requests");
    } else {
      log.warn({ detail: reason.logDetail }, 'tenant directory unreachable');
    }
    sendRefusal(socket, reason, { metrics: shared.metrics });
    return { outcome: ConnectionOutcome.Refused, sqlState: reason.sqlState };
  }
  shared.metrics.connections.inc({ outcome: ConnectionOutcome.Error });
  log.error({ err: reason }, 'session setup failed');
  const refusal = new Refusal(SqlState.UnableToConnect, 'the gateway could not connect you to the tenant database', {
    hint: 'Retry in a moment; if it persists, contact support.',
  });
  sendRefusal(socket, refusal, { metrics: shared.metrics });
  return { outcome: ConnectionOutcome.Error, sqlState: refusal.sqlState };
}

function observe(shared: Shared, phase: Phase, seconds: number): void {
  shared.metrics.phaseDuration.observe({ phase }, seconds);
}

/** Runs a phase: its time into the phase histogram, and a span under the connection's. */
function timed<T>(shared: Shared, phase: Phase, fn: () => T): T {
  const start = performance.now();
  const span = startPhaseSpan(phase);
  const done = () => {
    observe(shared, phase, (performance.now() - start) / 1000);
    span.end();
  };
  let result: T;
  try {
    result = inSpan(span, fn);
  } catch (error) {
    done();
    throw error;
  }
  if (result instanceof Promise) return result.finally(done) as T;
  done();
  return result;
}

/** The backend's own authentication and startup, up to its ReadyForQuery: a span, not a histogram phase. */
const BACKEND_AUTH = 'backend_auth';
