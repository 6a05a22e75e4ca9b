// Client authentication at the gateway (docs/architecture.md, step 8): SCRAM-SHA-256 and SCRAM-SHA-256-PLUS
// against the role's stored secret. The gateway authenticates the client itself, so channel
// binding covers the certificate the client saw (the gateway's), and the ClientKey recovered
// from the client's proof lets the backend leg log in as that role without the password.
//
// An unknown role, or a role whose stored secret cannot be read, runs the very same exchange on a
// mock secret and fails at the end with the bytes a wrong password gets: no probing for roles.
// Nothing here is logged; the rejection's message says why, for the caller's log, never a secret.
//
// A tenant in `passthrough` mode is asked for its password in the clear instead (inside the
// client's TLS), which the backend leg then answers the backend's own authentication with
// (collectPassword); the backend, not the gateway, decides whether it is right.
// @see https://www.postgresql.org/docs/current/sasl-authentication.html
// @see PostgreSQL src/backend/libpq/auth-sasl.c (CheckSASLAuth), auth-scram.c
import type { Socket } from 'node:net';
import {
  FrameDecoder,
  FrontendMessageType,
  MAX_AUTH_MESSAGE_LENGTH,
  ProtocolError,
  ScramAuthError,
  ScramMechanism,
  ScramProtocolError,
  ScramServerExchange,
  parsePasswordMessage,
  parseSASLInitialResponse,
  parseSASLResponse,
  parseScramSecret,
  scramMechanisms,
  serializeAuthenticationCleartextPassword,
  serializeAuthenticationSASL,
  serializeAuthenticationSASLContinue,
  serializeAuthenticationSASLFinal,
  type ScramSecret,
  SqlState,
} from '@tenantgate/wire';
import type { TenantRole } from '@tenantgate/tenancy';
import { checkTimeout } from '../backend/index.ts';
import { ConnectionOutcome, type GatewayMetrics, type WireTap } from '../telemetry/index.ts';
import { closeGracefully, sendRefusal } from '../refusal.ts';
import { Refusal, EdgeAuthError } from '../errors.ts';

/** What the exchange waits for next; switched on in EdgeAuthentication#onFrame. */
export const EdgeAuthState = {
  /** AuthenticationCleartextPassword sent (passthrough): the PasswordMessage. */
  AwaitingPassword: 'awaiting_password',
  /** AuthenticationSASL sent: the SASLInitialResponse with the chosen mechanism. */
  AwaitingInitialResponse: 'awaiting_initial_response',
  /** The SASLInitialResponse carried no data: an empty SASLContinue went out; the client-first-message comes in a SASLResponse. */
  AwaitingClientFirst: 'awaiting_client_first',
  /** server-first-message sent: the client-final-message with the proof. */
  AwaitingClientFinal: 'awaiting_client_final',
  /** Settled: authenticated (SASLFinal sent), refused, or closed. */
  Done: 'done',
} as const;
export type EdgeAuthState = (typeof EdgeAuthState)[keyof typeof EdgeAuthState];

/** What authenticateClient needs of a ClientStartup. */
export interface EdgeAuthClient {
  /** Paused, as the handshake hands it over; bytes pushed back into it are read first. */
  readonly socket: Socket;
  /** Absent or without `tlsServerEndPoint` (no TLS, or a certificate PLUS cannot bind to): SCRAM-SHA-256 only. */
  readonly serverCertificate?: { readonly tlsServerEndPoint: Buffer | undefined } | undefined;
}

export interface EdgeAuthOptions {
  /** The tenant's role named by the client's `user`; undefined when the tenant has none. */
  readonly role: TenantRole | undefined;
  /** The client's `user`, as it sent it: the name in the failure message. */
  readonly roleName: string;
  readonly tenantId: string;
  /**
   * Seeds the salts shown for unknown roles: at least 16 bytes, the same on every gateway of the
   * fleet and across restarts, or an unknown role's salt would change and give it away.
   */
  readonly mockKey: Buffer;
  /** Iterations shown for unknown roles; use what the tenant's real secrets use (default 4096). */
  readonly mockIterations?: number;
  /** From AuthenticationSASL to the last SASLResponse (PostgreSQL's authentication_timeout). */
  readonly timeoutMs: number;
  /**
   * Ends the exchange. Aborted with a Refusal as its reason, the client is sent that refusal
   * (e.g. 57P01 at shutdown); with any other reason it is closed without a word.
   */
  readonly signal?: AbortSignal;
  /** Counts refusals by SQLSTATE. */
  readonly metrics?: Pick<GatewayMetrics, 'refusals'>;
  /** How long a refused client may take to close; REFUSAL_GRACE_MS when absent. */
  readonly refusalGraceMs?: number;
  /** A protocol trace's view of the client socket (traced connections only). */
  readonly tap?: WireTap | undefined;
}

/**
 * A client that proved it knows the role's password. The caller holds the only copy of the
 * ClientKey: pass it to the backend login and then `clientKey.fill(0)`; never log or keep it.
 */
export interface EdgeAuthResult {
  /** ClientKey = ClientProof XOR ClientSignature: what the backend leg's SCRAM answers with. */
  readonly clientKey: Buffer;
  /** The role's ServerKey, to verify the backend's SCRAM signature. */
  readonly serverKey: Buffer;
  readonly mechanism: ScramMechanism;
  /** True for SCRAM-SHA-256-PLUS: the proof covered this connection's certificate. */
  readonly channelBound: boolean;
  /** Bytes the client sent after its last SASLResponse, unread (usually none). */
  readonly leftover: Buffer;
}

/** What a passthrough client sent: its password, for the backend to judge. */
export interface PasswordResult {
  /** Raw bytes, as PostgreSQL takes them; the caller zeroes them once the backend has answered. */
  readonly password: Buffer;
  /** Bytes the client sent after its PasswordMessage, unread (usually none). */
  readonly leftover: Buffer;
}

/** The options of {@link collectPassword}: no role or secret, the backend has them. */
export type PasswordOptions = Pick<EdgeAuthOptions, 'roleName' | 'timeoutMs' | 'signal' | 'metrics' | 'refusalGraceMs' | 'tap'>;

/**
 * Runs SASL authentication with a client that sent its StartupMessage: AuthenticationSASL,
 * SASLContinue and SASLFinal out, its SASL responses in. Resolves after writing SASLFinal,
 * without AuthenticationOk, with the socket paused and none of our listeners left; rejects with
 * an EdgeAuthError once the client was refused or closed.
 */
export function authenticateClient(client: EdgeAuthClient, options: EdgeAuthOptions): Promise<EdgeAuthResult> {
  return new Promise((resolve, reject) => {
    new EdgeAuthentication(client, options, (result) => resolve(result as EdgeAuthResult), reject).start();
  });
}

/**
 * Asks the client for its password (AuthenticationCleartextPassword) and resolves with it, the
 * socket paused as authenticateClient leaves it; rejects with an EdgeAuthError like it. Only for
 * TLS connections: the listener refuses plaintext unless a developer allowed it.
 */
export function collectPassword(client: Pick<EdgeAuthClient, 'socket'>, options: PasswordOptions): Promise<PasswordResult> {
  const full: EdgeAuthOptions = { ...options, role: undefined, tenantId: '', mockKey: PASSWORD_MODE };
  return new Promise((resolve, reject) => {
    new EdgeAuthentication(client, full, (result) => resolve(result as PasswordResult), reject).start();
  });
}

/** Marks the options of collectPassword: no SCRAM exchange, so no mock key is needed. */
const PASSWORD_MODE = Buffer.alloc(0);

/** The role's secret, or why there is none; the exchange runs on a mock secret then. */
function storedSecret(role: TenantRole | undefined): { secret: ScramSecret | undefined; reason: string; cause?: unknown } {
  if (role === undefined) return { secret: undefined, reason: 'no such role' };
  try {
    return { secret: parseScramSecret(role.scramSecret), reason: 'wrong password' };
  } catch (cause) {
    // The parse error names the field, never its value.
    return { secret: undefined, reason: "the role's stored secret is not a valid SCRAM-SHA-256 secret", cause };
  }
}

class EdgeAuthentication {
  readonly #socket: Socket;
  readonly #options: EdgeAuthOptions;
  readonly #resolve: (result: EdgeAuthResult | PasswordResult) => void;
  readonly #passwordMode: boolean;
  readonly #reject: (error: EdgeAuthError) => void;
  readonly #offered: ScramMechanism[];
  readonly #endPoint: Buffer | undefined;
  // PostgreSQL's PG_MAX_AUTH_TOKEN_LENGTH: an unauthenticated client cannot make us buffer more.
  readonly #decoder = new FrameDecoder({ maxMessageLength: MAX_AUTH_MESSAGE_LENGTH });
  #state: EdgeAuthState = EdgeAuthState.AwaitingInitialResponse;
  #secret: ScramSecret | undefined;
  #failureReason = '';
  #failureCause: unknown;
  #exchange: ScramServerExchange | undefined;
  #mechanism: ScramMechanism = ScramMechanism.Sha256;
  #timer: NodeJS.Timeout | undefined;

  constructor(
    client: EdgeAuthClient,
    options: EdgeAuthOptions,
    resolve: (r: EdgeAuthResult | PasswordResult) => void,
    reject: (e: EdgeAuthError) => void,
  ) {
    this.#socket = client.socket;
    this.#options = options;
    this.#passwordMode = options.mockKey === PASSWORD_MODE;
    this.#resolve = resolve;
    this.#reject = reject;
    this.#endPoint = client.serverCertificate?.tlsServerEndPoint;
    this.#offered = scramMechanisms(this.#endPoint !== undefined);
  }

  start(): void {
    try {
      checkTimeout(this.#options.timeoutMs, 'authenticateClient: timeoutMs');
      if (!this.#passwordMode) this.#exchange = this.#newExchange();
    } catch (error) {
      // The caller's mistake (a short mock key, a bad timeout): this connection cannot go on.
      return this.#abort(ConnectionOutcome.Error, `cannot start client authentication: ${(error as Error).message}`, error);
    }
    const { signal } = this.#options;
    if (signal?.aborted) return this.#onAbort();
    if (this.#socket.destroyed)
      return this.#abort(ConnectionOutcome.ClientClosed, 'the client closed the connection before authentication');
    this.#timer = setTimeout(this.#onTimeout, this.#options.timeoutMs);
    this.#timer.unref();
    signal?.addEventListener('abort', this.#onAbort, { once: true });
    this.#socket.on('data', this.#onData);
    this.#socket.on('error', this.#onError);
    this.#socket.on('end', this.#onEnd);
    this.#socket.on('close', this.#onEnd);
    if (this.#passwordMode) {
      this.#state = EdgeAuthState.AwaitingPassword;
      this.#send(serializeAuthenticationCleartextPassword());
    } else {
      this.#send(serializeAuthenticationSASL(this.#offered));
    }
    this.#socket.resume();
  }

  #newExchange(): ScramServerExchange {
    const { role, roleName, tenantId, mockKey, mockIterations } = this.#options;
    const stored = storedSecret(role);
    this.#secret = stored.secret;
    this.#failureReason = stored.reason;
    this.#failureCause = stored.cause;
    return new ScramServerExchange({
      secret: stored.secret,
      // The tenant is part of the seed: one role name must not show the same salt in every tenant.
      role: `${tenantId}\0${roleName}`,
      mockKey,
      ...(mockIterations === undefined ? {} : { mockIterations }),
      ...(this.#endPoint === undefined ? {} : { tlsServerEndPoint: this.#endPoint }),
    });
  }

  /** Writes a message of ours to the client. */
  #send(message: Buffer): void {
    this.#options.tap?.wrote(message);
    this.#socket.write(message);
  }

  readonly #onData = (chunk: Buffer): void => {
    this.#options.tap?.read(chunk);
    try {
      this.#decoder.push(chunk);
      while (this.#state !== EdgeAuthState.Done) {
        const frame = this.#decoder.next();
        if (frame === null) return;
        this.#onFrame(frame);
      }
    } catch (error) {
      this.#fail(error);
    }
  };

  /** The one place that decides what a client message means in the current state. */
  #onFrame(frame: Buffer): void {
    // A Terminate is a goodbye only when well formed (type and a length of 4); with a body it is
    // malformed, and gets the protocol violation any other unexpected message gets.
    if (frame[0] === FrontendMessageType.Terminate && frame.length === 5) {
      return this.#close(ConnectionOutcome.ClientClosed, 'the client sent Terminate during authentication');
    }
    if (frame[0] !== FrontendMessageType.PasswordMessage) {
      // PostgreSQL's words (auth-sasl.c, auth.c), the type as a number.
      const expected = this.#passwordMode ? 'password response' : 'SASL response';
      throw new Refusal(SqlState.ProtocolViolation, `expected ${expected}, got message type ${frame[0]}`);
    }
    switch (this.#state) {
      case EdgeAuthState.AwaitingPassword:
        return this.#onPassword(frame);
      case EdgeAuthState.AwaitingInitialResponse:
        return this.#onInitialResponse(frame);
      case EdgeAuthState.AwaitingClientFirst:
        return this.#onClientFirst(parseSASLResponse(frame).data);
      case EdgeAuthState.AwaitingClientFinal:
        return this.#onClientFinal(parseSASLResponse(frame).data);
      case EdgeAuthState.Done:
        return;
    }
  }

  #onInitialResponse(frame: Buffer): void {
    const { mechanism, data } = parseSASLInitialResponse(frame);
    const offered = this.#offered.find((name) => name === mechanism);
    if (offered === undefined) {
      throw new Refusal(SqlState.ProtocolViolation, 'client selected an invalid SASL authentication mechanism');
    }
    this.#mechanism = offered;
    if (data !== null) return this.#onClientFirst(data);
    // No initial response (length -1): an empty challenge, answered by the client-first-message.
    this.#state = EdgeAuthState.AwaitingClientFirst;
    this.#send(serializeAuthenticationSASLContinue(Buffer.alloc(0)));
  }

  #onClientFirst(data: Buffer): void {
    const serverFirst = this.#scram().handleClientFirst(this.#mechanism, data);
    this.#state = EdgeAuthState.AwaitingClientFinal;
    this.#send(serializeAuthenticationSASLContinue(Buffer.from(serverFirst, 'latin1')));
  }

  #onClientFinal(data: Buffer): void {
    const exchange = this.#scram();
    const serverFinal = exchange.handleClientFinal(data);
    const secret = this.#secret as ScramSecret; // the mock exchange never succeeds
    const clientKey = exchange.clientKey;
    this.#send(serializeAuthenticationSASLFinal(Buffer.from(serverFinal, 'latin1')));
    this.#settle();
    this.#socket.pause();
    this.#resolve({
      clientKey,
      serverKey: Buffer.from(secret.serverKey),
      mechanism: this.#mechanism,
      channelBound: this.#mechanism === ScramMechanism.Sha256Plus,
      leftover: this.#decoder.takeBuffered(),
    });
  }

  #onPassword(frame: Buffer): void {
    const { password } = parsePasswordMessage(frame);
    if (password.length === 0) {
      // PostgreSQL's answer to an empty password (auth.c), before any backend sees it.
      throw new Refusal(SqlState.InvalidPassword, `password authentication failed for user "${this.#options.roleName}"`);
    }
    this.#settle();
    this.#socket.pause();
    // A copy for the caller, who zeroes it; the frame's own bytes are zeroed here.
    const copy = Buffer.from(password);
    password.fill(0);
    this.#resolve({ password: copy, leftover: this.#decoder.takeBuffered() });
  }

  #scram(): ScramServerExchange {
    if (this.#exchange === undefined) throw new Error('no SCRAM exchange under way');
    return this.#exchange;
  }

  /** Maps what went wrong to what the client is told, in one place. */
  #fail(error: unknown): void {
    if (error instanceof Refusal) return this.#refuse(error, error.message, error);
    if (error instanceof ScramAuthError)
      return this.#refuse(authRefusal(error, this.#options.roleName), this.#authFailure(error), this.#failureCause ?? error);
    if (error instanceof ProtocolError || error instanceof ScramProtocolError) {
      return this.#refuse(new Refusal(SqlState.ProtocolViolation, error.message, { cause: error }), error.message, error);
    }
    // A fault of ours must cost one connection, never the process, and is not the client's to read.
    this.#refuse(
      new Refusal(SqlState.InternalError, 'internal error'),
      'internal error during client authentication',
      error,
      ConnectionOutcome.Error,
    );
  }

  #authFailure(error: ScramAuthError): string {
    if (error.sqlState === SqlState.InvalidPassword) return `password authentication failed: ${this.#failureReason}`;
    return error.message;
  }

  readonly #onTimeout = (): void => {
    const refusal = new Refusal(SqlState.QueryCanceled, 'canceling authentication due to timeout');
    this.#refuse(refusal, `no SASL response within ${this.#options.timeoutMs} ms (${this.#state})`, undefined, ConnectionOutcome.Timeout);
  };

  readonly #onAbort = (): void => {
    const reason: unknown = this.#options.signal?.reason;
    if (reason instanceof Refusal) return this.#refuse(reason, `authentication abandoned: ${reason.message}`, reason);
    this.#abort(ConnectionOutcome.Error, 'authentication abandoned by the caller', reason);
  };

  readonly #onError = (error: Error): void => {
    this.#abort(ConnectionOutcome.ClientClosed, `socket error during authentication: ${error.message}`, error);
  };

  readonly #onEnd = (): void => {
    this.#abort(ConnectionOutcome.ClientClosed, `the client closed the connection during authentication (${this.#state})`);
  };

  /** Leaves every state for Done and removes what start() added; true when this call did it. */
  #settle(): boolean {
    if (this.#state === EdgeAuthState.Done) return false;
    this.#state = EdgeAuthState.Done;
    clearTimeout(this.#timer);
    this.#options.signal?.removeEventListener('abort', this.#onAbort);
    this.#socket.off('data', this.#onData);
    this.#socket.off('error', this.#onError);
    this.#socket.off('end', this.#onEnd);
    this.#socket.off('close', this.#onEnd);
    // Let the exchange (and the ClientKey it holds) go with this object.
    this.#exchange = undefined;
    this.#secret = undefined;
    return true;
  }

  #refuse(refusal: Refusal, reason: string, cause: unknown, outcome: ConnectionOutcome = ConnectionOutcome.Refused): void {
    if (!this.#settle()) return;
    this.#decoder.takeBuffered();
    sendRefusal(this.#socket, refusal, { metrics: this.#options.metrics, graceMs: this.#options.refusalGraceMs });
    this.#reject(new EdgeAuthError(outcome, reason, { refusal, cause }));
  }

  /** The client said goodbye (Terminate): end our side too, without a word. */
  #close(outcome: ConnectionOutcome, reason: string): void {
    if (!this.#settle()) return;
    this.#decoder.takeBuffered();
    closeGracefully(this.#socket, undefined, this.#options.refusalGraceMs);
    this.#reject(new EdgeAuthError(outcome, reason));
  }

  /** The client is gone, or the caller gave up: close without a word. */
  #abort(outcome: ConnectionOutcome, reason: string, cause?: unknown): void {
    if (!this.#settle()) return;
    this.#socket.destroy();
    this.#reject(new EdgeAuthError(outcome, reason, { cause }));
  }
}

/**
 * PostgreSQL's texts: the same message for a wrong password and an unknown role (the detail
 * only goes to the server log), and its words for channel binding failures (auth-scram.c).
 */
function authRefusal(error: ScramAuthError, roleName: string): Refusal {
  if (error.sqlState === SqlState.InvalidPassword) {
    return new Refusal(SqlState.InvalidPassword, `password authentication failed for user "${roleName}"`);
  }
  if (error.message.startsWith(NEGOTIATION_ERROR)) {
    return new Refusal(error.sqlState, NEGOTIATION_ERROR, {
      detail:
        'The client supports SCRAM channel binding but thinks the server does not.  However, this server does support channel binding.',
    });
  }
  // "SCRAM channel binding check failed": the library uses PostgreSQL's words already.
  return new Refusal(error.sqlState, error.message);
}

const NEGOTIATION_ERROR = 'SCRAM channel binding negotiation error';
