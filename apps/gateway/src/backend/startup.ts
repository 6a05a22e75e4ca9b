// The second step of the backend leg: the rewritten StartupMessage, the backend's authentication
// request (none past the client certificate under pg_hba `cert`, or SCRAM answered with the
// ClientKey recovered from the client's own proof), and the messages up to the first
// ReadyForQuery. Re-exported by backend-connect.ts.
// @see https://www.postgresql.org/docs/current/protocol-flow.html#PROTOCOL-FLOW-START-UP
// Map: docs/architecture.md, step 10.
import { createHash, type X509Certificate } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import type { TLSSocket } from 'node:tls';
import {
  AuthenticationCode,
  BackendMessageType,
  FrameDecoder,
  PROTOCOL_OPTION_PREFIX,
  ProtocolError,
  ScramClientExchange,
  ScramError,
  ScramMechanism,
  SqlState,
  parseBackendMessage,
  serializePasswordMessage,
  serializeSASLInitialResponse,
  serializeSASLResponse,
  serializeStartupMessage,
  type BackendMessage,
  type NoticeFields,
  type TransactionStatus,
} from '@tenantgate/wire';
import type { WireTap } from '../telemetry/index.ts';
import {
  BackendAuthFailedError,
  BackendAuthUnsupportedError,
  BackendClosedError,
  BackendError,
  BackendPhase,
  BackendProtocolError,
  BackendStartupError,
} from '../errors.ts';
import { describeError } from './failures.ts';
import type { OpenedBackend } from './connect.ts';
import { silentEndError, takeIdleWatch, type IdleWatch } from './idle.ts';
import { abortedError, checkTimeout, timeoutError } from './phase.ts';

/** How the gateway answers the backend's authentication request. */
export type BackendAuth =
  /** SCRAM with the ClientKey from `ScramServerExchange#clientKey`; the ServerKey (from the role's secret) lets us check the backend too. */
  | { readonly kind: 'scram-key'; readonly clientKey: Buffer; readonly serverKey?: Buffer }
  /** The client certificate is the authentication (pg_hba `cert`); a request for more fails. */
  | { readonly kind: 'none' }
  /**
   * Passthrough: the client's own password answers whatever the backend asks (SCRAM, md5,
   * password); a backend that asks for nothing is refused, since then nobody checked the client.
   */
  | { readonly kind: 'password'; readonly password: Buffer };

export interface StartBackendSessionOptions {
  /** The rewritten startup parameters in the order to send: `user`, `database`, then the others. */
  readonly parameters: ReadonlyMap<string, string> | Iterable<readonly [string, string]>;
  readonly auth: BackendAuth;
  /** From the StartupMessage to the first ReadyForQuery. */
  readonly timeoutMs: number;
  /** Protocol 3.minor asked of the backend; default 0 (3.0). PostgreSQL < 18 answers 3.2 with NegotiateProtocolVersion. */
  readonly minorVersion?: number;
  readonly signal?: AbortSignal;
  /** A protocol trace's view of the backend socket (traced connections only). */
  readonly tap?: WireTap | undefined;
}

/** What authenticated the gateway to the backend. */
export type BackendAuthMethod = 'none' | 'SCRAM-SHA-256' | 'SCRAM-SHA-256-PLUS' | 'md5' | 'password';

export interface BackendKey {
  readonly processId: number;
  /** 4 bytes under protocol 3.0; 4..256 under 3.2. */
  readonly secretKey: Buffer;
}

/** A backend session at its first ReadyForQuery, ready to splice. */
export interface BackendSession {
  /**
   * Paused, with none of our listeners but a no-op 'error' guard: attach 'data', 'error' and
   * 'close' listeners, then `resume()` (a paused stream does not start flowing on 'data').
   */
  readonly socket: TLSSocket;
  /** ParameterStatus messages in the order received. */
  readonly parameterStatus: [name: string, value: string][];
  /** Absent only for servers that send none (PostgreSQL always does). */
  readonly backendKey: BackendKey | undefined;
  readonly transactionStatus: TransactionStatus;
  /** NoticeResponses received during startup, in order. */
  readonly notices: NoticeFields[];
  /** The protocol minor version in force on this leg (after NegotiateProtocolVersion). */
  readonly protocolMinor: number;
  /** `_pq_.` options the backend did not recognize (NegotiateProtocolVersion). */
  readonly unrecognizedProtocolOptions: string[];
  readonly authMethod: BackendAuthMethod;
  /** True when SCRAM checked the backend's signature (a ServerKey was given). */
  readonly serverVerified: boolean;
  /** Bytes received after ReadyForQuery: the splice must forward them first. */
  readonly leftover: Buffer;
  /** For the phase histograms. */
  readonly startupMs: number;
}

/** Larger than any startup-phase message PostgreSQL sends (its ErrorResponses are short). */
const STARTUP_MESSAGE_LIMIT = 1 << 20;

const StartupState = {
  /** StartupMessage sent; waiting for the backend's Authentication request. */
  AwaitingAuthRequest: 'awaiting-auth-request',
  AwaitingSaslContinue: 'awaiting-sasl-continue',
  AwaitingSaslFinal: 'awaiting-sasl-final',
  /** SCRAM done; waiting for AuthenticationOk. */
  AwaitingAuthOk: 'awaiting-auth-ok',
  /** Authenticated: ParameterStatus, BackendKeyData, until ReadyForQuery. */
  Starting: 'starting',
  Ready: 'ready',
} as const;
type StartupState = (typeof StartupState)[keyof typeof StartupState];

/** Methods PostgreSQL may ask for that a gateway without the password cannot answer. */
const UNSUPPORTED_METHODS: ReadonlyMap<number, string> = new Map([
  [AuthenticationCode.KerberosV5, 'Kerberos V5'],
  [AuthenticationCode.CleartextPassword, 'password'],
  [AuthenticationCode.MD5Password, 'md5'],
  [AuthenticationCode.GSS, 'GSSAPI'],
  [AuthenticationCode.SSPI, 'SSPI'],
]);

/**
 * Sends the StartupMessage on an opened backend and runs the startup phase to the first
 * ReadyForQuery. Rejects with a BackendError (BackendStartupError for the backend's own
 * ErrorResponse) and destroys the socket on any failure.
 */
export async function startBackendSession(opened: OpenedBackend, options: StartBackendSessionOptions): Promise<BackendSession> {
  const { socket } = opened;
  const watch = takeIdleWatch(socket) ?? unwatched(socket);
  let exchange: StartupExchange;
  let startup: Buffer;
  try {
    checkTimeout(options.timeoutMs, 'timeoutMs');
    exchange = new StartupExchange(opened.peerCertificate, options, watch.where);
    startup = exchange.startupMessage();
  } catch (error) {
    // The caller's mistake (no user, a NUL in a value, a bad timeout), not the backend's.
    socket.destroy();
    throw error;
  }
  return runStartup(socket, watch, exchange, startup, options);
}

async function runStartup(
  socket: TLSSocket,
  watch: IdleWatch,
  exchange: StartupExchange,
  startup: Buffer,
  options: StartBackendSessionOptions,
): Promise<BackendSession> {
  const started = performance.now();
  const reader = new StartupReader(socket, watch, options.tap);
  const stopLimits = limit(reader, watch.where, options.timeoutMs, options.signal);
  try {
    checkIdle(watch);
    // The StartupMessage has no type byte: the trace is told its parameters by the session.
    socket.write(startup);
    while (exchange.state !== StartupState.Ready) {
      const reply = await exchange.handle(await reader.next(exchange.minorVersion, exchange.answersPasswords));
      if (reply === undefined) continue;
      options.tap?.wrote(reply);
      socket.write(reply);
    }
    return { ...exchange.result(), socket, leftover: reader.detach(), startupMs: performance.now() - started };
  } catch (error) {
    reader.detach();
    socket.destroy();
    throw classify(error, watch.where);
  } finally {
    stopLimits();
  }
}

/** A socket that did not come from openBackend (tests, or a connection made elsewhere). */
function unwatched(socket: TLSSocket): IdleWatch {
  const where = `backend ${socket.remoteAddress ?? '?'}:${socket.remotePort ?? '?'}`;
  return {
    where,
    tlsVersion: socket.getProtocol() ?? 'unknown',
    handshakeAt: -Infinity,
    error: undefined,
    closedAt: undefined,
    unexpectedBytes: 0,
    stop() {},
  };
}

/** What happened while the connection waited for the client: a close, an alert, stray bytes. */
function checkIdle(watch: IdleWatch): void {
  const phase = BackendPhase.Idle;
  if (watch.unexpectedBytes > 0) {
    throw new BackendProtocolError({ phase, logDetail: `${watch.where}: sent ${watch.unexpectedBytes} bytes before the StartupMessage` });
  }
  if (watch.error !== undefined || watch.closedAt !== undefined) throw silentEndError(watch, watch.error, phase);
}

/** The startup timeout and the caller's signal both end the wait on the next message. */
function limit(reader: StartupReader, where: string, timeoutMs: number, signal: AbortSignal | undefined): () => void {
  const phase = BackendPhase.Startup;
  const timer = setTimeout(() => reader.fail(timeoutError(phase, where, timeoutMs)), timeoutMs);
  const onAbort = (): void => reader.fail(abortedError(phase, where, signal?.reason));
  if (signal?.aborted) onAbort();
  else signal?.addEventListener('abort', onAbort, { once: true });
  return () => {
    clearTimeout(timer);
    signal?.removeEventListener('abort', onAbort);
  };
}

function classify(error: unknown, where: string): BackendError {
  const phase = BackendPhase.Startup;
  if (error instanceof BackendError) return error;
  if (error instanceof ProtocolError) return new BackendProtocolError({ phase, logDetail: `${where}: ${error.message}`, cause: error });
  return new BackendClosedError({ phase, logDetail: `${where}: ${describeError(error)}`, cause: error });
}

/**
 * Whole messages from the socket, one at a time and only when asked, so that whatever follows
 * ReadyForQuery stays unread in the decoder and goes to the splice as `leftover`.
 */
class StartupReader {
  readonly #socket: TLSSocket;
  readonly #watch: IdleWatch;
  readonly #decoder = new FrameDecoder({ maxMessageLength: STARTUP_MESSAGE_LIMIT });
  #waiter: { resolve: (frame: Buffer) => void; reject: (error: Error) => void } | undefined;
  #failure: Error | undefined;
  #received = 0;
  #attached = true;

  readonly #tap: WireTap | undefined;

  constructor(socket: TLSSocket, watch: IdleWatch, tap: WireTap | undefined) {
    this.#socket = socket;
    this.#watch = watch;
    this.#tap = tap;
    socket.on('data', this.#onData);
    socket.on('error', this.#onError);
    socket.on('close', this.#onClose);
    socket.resume();
  }

  /** The next whole message; buffered messages come before a failure that followed them. */
  next(minorVersion: number, answersPasswords: boolean): Promise<BackendMessage> {
    const frame = this.#decoder.next();
    if (frame !== null) return Promise.resolve(parse(frame, minorVersion, answersPasswords, this.#watch.where));
    if (this.#failure !== undefined) return Promise.reject(this.#failure);
    return new Promise<Buffer>((resolve, reject) => {
      this.#waiter = { resolve, reject };
    }).then((next) => parse(next, minorVersion, answersPasswords, this.#watch.where));
  }

  fail(error: Error): void {
    this.#failure ??= error;
    const waiter = this.#waiter;
    this.#waiter = undefined;
    waiter?.reject(this.#failure);
  }

  /** Stops reading and hands over the bytes not yet framed. */
  detach(): Buffer {
    if (this.#attached) {
      this.#attached = false;
      this.#socket.pause();
      this.#socket.off('data', this.#onData);
      this.#socket.off('error', this.#onError);
      this.#socket.off('close', this.#onClose);
    }
    return this.#decoder.takeBuffered();
  }

  readonly #onData = (chunk: Buffer): void => {
    this.#tap?.read(chunk);
    this.#received += chunk.length;
    this.#decoder.push(chunk);
    const waiter = this.#waiter;
    if (waiter === undefined) return;
    let frame: Buffer | null;
    try {
      frame = this.#decoder.next();
    } catch (error) {
      this.#waiter = undefined;
      waiter.reject(error as Error);
      return;
    }
    if (frame === null) return;
    this.#waiter = undefined;
    waiter.resolve(frame);
  };

  readonly #onError = (error: Error): void => {
    this.fail(this.#ended(error));
  };

  readonly #onClose = (): void => {
    this.fail(this.#ended(undefined));
  };

  #ended(error: Error | undefined): BackendError {
    const phase = BackendPhase.Startup;
    if (this.#received === 0) return silentEndError(this.#watch, error, phase);
    const what = error === undefined ? 'closed the connection' : describeError(error);
    return new BackendClosedError({ phase, logDetail: `${this.#watch.where}: ${what} during startup`, cause: error });
  }
}

/** Authentication requests the gateway cannot answer get their own error before parsing. */
function parse(frame: Buffer, minorVersion: number, answersPasswords: boolean, where: string): BackendMessage {
  if (frame[0] === BackendMessageType.Authentication && frame.length >= 9) {
    const code = frame.readInt32BE(5);
    const answerable = answersPasswords && (code === AuthenticationCode.CleartextPassword || code === AuthenticationCode.MD5Password);
    const method = answerable ? undefined : UNSUPPORTED_METHODS.get(code);
    if (method !== undefined) {
      const logDetail = `${where}: asked for ${method} authentication`;
      throw new BackendAuthUnsupportedError(method, { phase: BackendPhase.Startup, logDetail });
    }
  }
  return parseBackendMessage(frame, { minorVersion });
}

/** The startup phase as one state value, advanced by each message in {@link handle}. */
class StartupExchange {
  #state: StartupState = StartupState.AwaitingAuthRequest;
  readonly #peerCertificate: X509Certificate;
  readonly #options: StartBackendSessionOptions;
  readonly #where: string;
  readonly #requestedMinor: number;
  #minorVersion: number;
  #scram: ScramClientExchange | undefined;
  #authMethod: BackendAuthMethod = 'none';
  readonly #parameterStatus: [string, string][] = [];
  readonly #notices: NoticeFields[] = [];
  #unrecognizedOptions: string[] = [];
  #backendKey: BackendKey | undefined;
  #transactionStatus: TransactionStatus | undefined;

  constructor(peerCertificate: X509Certificate, options: StartBackendSessionOptions, where: string) {
    this.#peerCertificate = peerCertificate;
    this.#options = options;
    this.#where = where;
    this.#requestedMinor = options.minorVersion ?? 0;
    this.#minorVersion = this.#requestedMinor;
  }

  get state(): StartupState {
    return this.#state;
  }

  get minorVersion(): number {
    return this.#minorVersion;
  }

  /** True when the client's password is at hand for a password or md5 request. */
  get answersPasswords(): boolean {
    return this.#options.auth.kind === 'password';
  }

  startupMessage(): Buffer {
    const parameters = new Map<string, string>();
    const protocolOptions = new Map<string, string>();
    const entries = this.#options.parameters instanceof Map ? this.#options.parameters.entries() : this.#options.parameters;
    for (const [name, value] of entries) {
      (name.startsWith(PROTOCOL_OPTION_PREFIX) ? protocolOptions : parameters).set(name, value);
    }
    return serializeStartupMessage({ minorVersion: this.#requestedMinor, parameters, protocolOptions });
  }

  /** Takes one message; returns the bytes to send back, if any. */
  async handle(message: BackendMessage): Promise<Buffer | undefined> {
    switch (message.kind) {
      case 'ErrorResponse':
        throw new BackendStartupError(message.fields, { phase: BackendPhase.Startup, logDetail: this.#errorDetail(message.fields) });
      case 'NoticeResponse':
        this.#notices.push(message.fields);
        return undefined;
      case 'NegotiateProtocolVersion':
        this.#expect(message.kind, StartupState.AwaitingAuthRequest);
        this.#minorVersion = Math.min(this.#requestedMinor, message.newestMinorVersion);
        this.#unrecognizedOptions = message.unrecognizedOptions;
        return undefined;
      case 'AuthenticationOk':
        this.#expect(message.kind, StartupState.AwaitingAuthRequest, StartupState.AwaitingAuthOk);
        if (this.#state === StartupState.AwaitingAuthRequest && this.#options.auth.kind === 'password') {
          // Nobody checked the client's password. The client is told what a wrong password gets,
          // so that a role that logs in by certificate cannot be told from one with a password.
          const fields = {
            severity: 'FATAL',
            code: SqlState.InvalidPassword,
            message: `password authentication failed for user "${this.#backendUser()}"`,
          };
          const logDetail = `${this.#where}: passthrough: the backend asked for no password (trust or cert in pg_hba), so nobody would check the client's`;
          throw new BackendStartupError(fields, { phase: BackendPhase.Startup, logDetail });
        }
        this.#state = StartupState.Starting;
        return undefined;
      case 'AuthenticationSASL':
        this.#expect(message.kind, StartupState.AwaitingAuthRequest);
        return this.#startScram(message.mechanisms);
      case 'AuthenticationSASLContinue':
        this.#expect(message.kind, StartupState.AwaitingSaslContinue);
        return this.#continueScram(message.data);
      case 'AuthenticationSASLFinal':
        this.#expect(message.kind, StartupState.AwaitingSaslFinal);
        this.#finishScram(message.data);
        return undefined;
      case 'AuthenticationCleartextPassword':
        this.#expect(message.kind, StartupState.AwaitingAuthRequest);
        return this.#answerPassword('password', this.#password());
      case 'AuthenticationMD5Password':
        this.#expect(message.kind, StartupState.AwaitingAuthRequest);
        return this.#answerPassword('md5', md5Answer(this.#password(), this.#backendUser(), message.salt));
      case 'ParameterStatus':
        this.#expect(message.kind, StartupState.Starting);
        this.#parameterStatus.push([message.name, message.value]);
        return undefined;
      case 'BackendKeyData':
        this.#expect(message.kind, StartupState.Starting);
        this.#backendKey = { processId: message.processId, secretKey: message.secretKey };
        return undefined;
      case 'ReadyForQuery':
        this.#expect(message.kind, StartupState.Starting);
        this.#transactionStatus = message.status;
        this.#state = StartupState.Ready;
        return undefined;
    }
  }

  result(): Omit<BackendSession, 'socket' | 'leftover' | 'startupMs'> {
    return {
      parameterStatus: this.#parameterStatus,
      backendKey: this.#backendKey,
      transactionStatus: this.#transactionStatus as TransactionStatus,
      notices: this.#notices,
      protocolMinor: this.#minorVersion,
      unrecognizedProtocolOptions: this.#unrecognizedOptions,
      authMethod: this.#authMethod,
      serverVerified: this.#scram?.serverVerified ?? false,
    };
  }

  #expect(kind: BackendMessage['kind'], ...states: StartupState[]): void {
    if (states.includes(this.#state)) return;
    const logDetail = `${this.#where}: unexpected ${kind} in startup state ${this.#state}`;
    throw new BackendProtocolError({ phase: BackendPhase.Startup, logDetail });
  }

  /** parse() lets cleartext and md5 requests through only when a password is at hand. */
  #password(): Buffer {
    const { auth } = this.#options;
    if (auth.kind !== 'password') throw new Error('a password request reached a session without a password');
    return auth.password;
  }

  #backendUser(): string {
    const entries = this.#options.parameters instanceof Map ? this.#options.parameters.entries() : this.#options.parameters;
    for (const [name, value] of entries) if (name === 'user') return value;
    return '';
  }

  #answerPassword(method: 'password' | 'md5', answer: Buffer | string): Buffer {
    this.#authMethod = method;
    this.#state = StartupState.AwaitingAuthOk;
    return serializePasswordMessage(answer);
  }

  /** Binds to the backend's certificate whenever it offers PLUS: a downgrade would otherwise go unseen. */
  #startScram(mechanisms: string[]): Buffer {
    const { auth } = this.#options;
    if (auth.kind === 'none') {
      throw this.#authFailed('it asks for a password, and this session has no SCRAM key for it', 'SCRAM requested with auth kind none');
    }
    const plus = mechanisms.includes(ScramMechanism.Sha256Plus);
    const credentials = auth.kind === 'password' ? { password: auth.password } : { clientKey: auth.clientKey, serverKey: auth.serverKey };
    const exchange = new ScramClientExchange({
      ...credentials,
      channelBinding: plus ? 'require' : 'prefer',
      peerCertificate: this.#peerCertificate,
    });
    this.#scram = exchange;
    const { mechanism, message } = this.#scramStep(() => exchange.start(mechanisms));
    this.#authMethod = mechanism;
    this.#state = StartupState.AwaitingSaslContinue;
    return serializeSASLInitialResponse(mechanism, Buffer.from(message, 'latin1'));
  }

  async #continueScram(data: Buffer): Promise<Buffer> {
    const exchange = this.#scram as ScramClientExchange;
    let final: string;
    try {
      final = await exchange.handleServerFirst(data);
    } catch (error) {
      throw this.#scramFailure(error);
    }
    this.#state = StartupState.AwaitingSaslFinal;
    return serializeSASLResponse(Buffer.from(final, 'latin1'));
  }

  #finishScram(data: Buffer): void {
    const exchange = this.#scram as ScramClientExchange;
    this.#scramStep(() => exchange.handleServerFinal(data));
    this.#state = StartupState.AwaitingAuthOk;
  }

  #scramStep<T>(step: () => T): T {
    try {
      return step();
    } catch (error) {
      throw this.#scramFailure(error);
    }
  }

  #scramFailure(error: unknown): unknown {
    if (!(error instanceof ScramError)) return error;
    const reason =
      this.#state === StartupState.AwaitingSaslFinal
        ? "it could not prove that it knows the role's secret"
        : 'the SCRAM exchange with it failed';
    return this.#authFailed(reason, error.message, error);
  }

  #authFailed(reason: string, detail: string, cause?: unknown): BackendAuthFailedError {
    return new BackendAuthFailedError(reason, { phase: BackendPhase.Startup, logDetail: `${this.#where}: ${detail}`, cause });
  }

  #errorDetail(fields: NoticeFields): string {
    const extra = [fields.detail && `detail: ${fields.detail}`, fields.hint && `hint: ${fields.hint}`].filter(Boolean).join('; ');
    return `${this.#where}: ${fields.severity} ${fields.code} ${fields.message}${extra ? ` (${extra})` : ''}`;
  }
}

/**
 * PostgreSQL's md5 answer: "md5" + md5hex(md5hex(password + user) + salt).
 * @see https://www.postgresql.org/docs/current/protocol-flow.html#PROTOCOL-FLOW-START-UP
 */
export function md5Answer(password: Buffer, user: string, salt: Buffer): string {
  const inner = createHash('md5').update(password).update(user, 'utf8').digest('hex');
  return 'md5' + createHash('md5').update(inner, 'latin1').update(salt).digest('hex');
}
