// A small TLS Postgres server made only of @tenantgate/wire, for real clients (psql, pg,
// postgres) to log into: the gateway's client leg (docs/architecture.md, step 2 to 4 and 8) in miniature.
// It negotiates TLS as PostgreSQL does, authenticates with SCRAM-SHA-256(-PLUS) against
// pg_authid-style secrets (unknown roles fail like a wrong password), then answers every simple
// Query with one row: the authenticated role.
// @see https://www.postgresql.org/docs/current/protocol-flow.html
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { createServer, type Server, type Socket } from 'node:net';
import { TLSSocket, createSecureContext, type SecureContext } from 'node:tls';
import {
  FrameDecoder,
  FramePhase,
  FrontendMessageType,
  LATEST_MINOR_VERSION,
  MAX_AUTH_MESSAGE_LENGTH,
  MAX_MESSAGE_LENGTH,
  PasswordResponseKind,
  ProtocolError,
  ScramAuthError,
  ScramProtocolError,
  ScramServerExchange,
  buildErrorResponse,
  parseFrontendMessage,
  parseScramSecret,
  parseStartupPacket,
  scramMechanisms,
  serializeAuthenticationOk,
  serializeAuthenticationSASL,
  serializeAuthenticationSASLContinue,
  serializeAuthenticationSASLFinal,
  serializeBackendKeyData,
  serializeNegotiateProtocolVersion,
  serializeParameterStatus,
  serializeReadyForQuery,
  tlsServerEndPoint,
  type ScramSecret,
  type StartupMessage,
} from '@tenantgate/wire';
import { parseQuery, serializeCommandComplete, serializeDataRow, serializeRowDescription } from './query-messages.ts';

export interface ServerCertificate {
  readonly chainPem: string;
  readonly keyPem: string;
}

export interface ScramTestServerOptions {
  /** Presented when the client's SNI names none of `sni` (or it sends no SNI). */
  readonly certificate: ServerCertificate;
  /** Certificates chosen by the exact SNI name, as the gateway picks one per suffix. */
  readonly sni?: ReadonlyMap<string, ServerCertificate>;
  /** Role name → SCRAM secret as in pg_authid.rolpassword. */
  readonly roles: ReadonlyMap<string, string>;
  /** Seeds the mock salts of unknown roles; default a fixed 32-byte key. */
  readonly mockKey?: Buffer;
}

/** One finished authentication, for tests to check what was negotiated. */
export interface Authentication {
  readonly user: string;
  readonly mechanism: string;
  /** The client's SNI, or false when it sent none. */
  readonly servername: string | false;
  /** 'ok', or the SQLSTATE the client was refused with. */
  readonly outcome: string;
}

export interface ScramTestServer {
  readonly host: string;
  readonly port: number;
  readonly authentications: readonly Authentication[];
  /** Failures that are the server's own fault (they reach the client as XX000). */
  readonly errors: readonly Error[];
  close(): Promise<void>;
}

export const PARAMETER_STATUS: ReadonlyMap<string, string> = new Map([
  ['server_version', '15.0'],
  ['server_encoding', 'UTF8'],
  ['client_encoding', 'UTF8'],
  ['DateStyle', 'ISO, MDY'],
  ['integer_datetimes', 'on'],
  ['standard_conforming_strings', 'on'],
]);

const DEFAULT_MOCK_KEY = Buffer.alloc(32, 0x5a);
const SSL_ACCEPTED = Buffer.from('S');
const GSSENC_REFUSED = Buffer.from('N');

interface ServerState {
  readonly roles: ReadonlyMap<string, ScramSecret>;
  readonly mockKey: Buffer;
  readonly defaultContext: SecureContext;
  readonly sniContexts: ReadonlyMap<string, SecureContext>;
  readonly authentications: Authentication[];
  readonly errors: Error[];
  nextProcessId: number;
}

export async function startScramTestServer(options: ScramTestServerOptions): Promise<ScramTestServer> {
  const state: ServerState = {
    roles: new Map([...options.roles].map(([name, secret]) => [name, parseScramSecret(secret)])),
    mockKey: options.mockKey ?? DEFAULT_MOCK_KEY,
    defaultContext: secureContext(options.certificate),
    sniContexts: new Map([...(options.sni ?? [])].map(([name, certificate]) => [name, secureContext(certificate)])),
    authentications: [],
    errors: [],
    nextProcessId: 1000,
  };
  const sockets = new Set<Socket>();
  const server = createServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    new TestConnection(socket, state);
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return handle(server, sockets, state);
}

function handle(server: Server, sockets: Set<Socket>, state: ServerState): ScramTestServer {
  const address = server.address();
  if (address === null || typeof address === 'string') throw new Error('the test server has no TCP address');
  return {
    host: address.address,
    port: address.port,
    authentications: state.authentications,
    errors: state.errors,
    close: async () => {
      const closed = once(server, 'close');
      server.close();
      for (const socket of sockets) socket.destroy();
      await closed;
    },
  };
}

function secureContext(certificate: ServerCertificate): SecureContext {
  return createSecureContext({ cert: certificate.chainPem, key: certificate.keyPem, minVersion: 'TLSv1.2' });
}

/** The protocol phases of one connection, switched on in TestConnection#handle. */
const Step = {
  /** Plaintext startup packets: SSLRequest, GSSENCRequest, CancelRequest. */
  Negotiating: 'negotiating',
  Handshaking: 'handshaking',
  /** Over TLS: the StartupMessage. */
  AwaitingStartup: 'awaiting-startup',
  AwaitingClientFirst: 'awaiting-client-first',
  AwaitingClientFinal: 'awaiting-client-final',
  Ready: 'ready',
  /** After an error in an extended-protocol batch: everything up to Sync is dropped. */
  SkippingToSync: 'skipping-to-sync',
  Closed: 'closed',
} as const;
type Step = (typeof Step)[keyof typeof Step];

class TestConnection {
  readonly #state: ServerState;
  #socket: Socket;
  #step: Step = Step.Negotiating;
  #decoder = new FrameDecoder({ phase: FramePhase.Startup });
  #user = '';
  #mechanism = '';
  #scram: ScramServerExchange | undefined;
  readonly #onData = (chunk: Buffer): void => this.#receive(chunk);

  constructor(socket: Socket, state: ServerState) {
    this.#state = state;
    this.#socket = socket;
    socket.setNoDelay(true);
    socket.on('data', this.#onData);
    socket.on('error', () => socket.destroy()); // a client that goes away is no failure of ours
  }

  #receive(chunk: Buffer): void {
    try {
      this.#decoder.push(chunk);
      for (let frame = this.#decoder.next(); frame !== null; frame = this.#decoder.next()) {
        this.#handle(frame);
        if (this.#step === Step.Handshaking || this.#step === Step.Closed) return;
      }
    } catch (error) {
      this.#refuse(error);
    }
  }

  #handle(frame: Buffer): void {
    switch (this.#step) {
      case Step.Negotiating:
        return this.#negotiate(frame);
      case Step.AwaitingStartup:
        return this.#startup(frame);
      case Step.AwaitingClientFirst: {
        const message = parseFrontendMessage(frame, PasswordResponseKind.SASLInitial);
        if (message.kind === 'Terminate') return this.#close();
        if (message.kind !== 'SASLInitialResponse' || message.data === null) {
          throw new ProtocolError('expected a SASLInitialResponse with data');
        }
        this.#mechanism = message.mechanism;
        const serverFirst = this.#exchange().handleClientFirst(message.mechanism, message.data);
        this.#socket.write(serializeAuthenticationSASLContinue(Buffer.from(serverFirst, 'latin1')));
        this.#step = Step.AwaitingClientFinal;
        return;
      }
      case Step.AwaitingClientFinal: {
        const message = parseFrontendMessage(frame, PasswordResponseKind.SASL);
        if (message.kind === 'Terminate') return this.#close();
        if (message.kind !== 'SASLResponse') throw new ProtocolError('expected a SASLResponse');
        const serverFinal = this.#exchange().handleClientFinal(message.data);
        return this.#welcome(serverFinal);
      }
      case Step.Ready:
        return this.#query(frame);
      case Step.SkippingToSync:
        if (frame[0] === FrontendMessageType.Terminate) return this.#close();
        if (frame[0] === FrontendMessageType.Sync) this.#readyForQuery();
        return;
      case Step.Handshaking:
      case Step.Closed:
        return;
    }
  }

  /** Plaintext: only TLS goes on from here (docs/architecture.md, step 2). */
  #negotiate(frame: Buffer): void {
    const packet = parseStartupPacket(frame);
    switch (packet.kind) {
      case 'SSLRequest':
        return this.#startTls(this.#decoder.bufferedBytes > 0);
      case 'GSSENCRequest':
        this.#socket.write(GSSENC_REFUSED);
        return;
      case 'CancelRequest':
        return this.#close();
      case 'StartupMessage':
        this.#user = packet.parameters.get('user') ?? '';
        return this.#close(
          buildErrorResponse({
            severity: 'FATAL',
            code: '28000',
            message: 'TLS is required',
            hint: 'Connect with sslmode=require or stronger.',
          }),
        );
    }
  }

  /**
   * 'S', then the handshake on fresh bytes. Bytes that came with the SSLRequest were sent in
   * plaintext before TLS, perhaps by a man in the middle: they are dropped unread, and the
   * client is told so once TLS is up, as PostgreSQL does (CVE-2021-23214).
   */
  #startTls(injected: boolean): void {
    this.#step = Step.Handshaking;
    const raw = this.#socket;
    raw.off('data', this.#onData);
    raw.write(SSL_ACCEPTED);
    const contexts = this.#state.sniContexts;
    const tlsSocket = new TLSSocket(raw, {
      isServer: true,
      secureContext: this.#state.defaultContext,
      SNICallback: (servername, callback) => callback(null, contexts.get(servername) ?? this.#state.defaultContext),
    });
    this.#socket = tlsSocket;
    this.#decoder = new FrameDecoder({ phase: FramePhase.Startup });
    tlsSocket.on('error', () => tlsSocket.destroy());
    tlsSocket.on('data', this.#onData);
    tlsSocket.once('secure', () => {
      if (injected) {
        this.#close(
          buildErrorResponse({
            severity: 'FATAL',
            code: '08P01',
            message: 'received unencrypted data after SSL request',
            detail: 'This could be either a client-software bug or evidence of an attempted man-in-the-middle attack.',
          }),
        );
        return;
      }
      this.#step = Step.AwaitingStartup;
    });
  }

  #startup(frame: Buffer): void {
    const packet = parseStartupPacket(frame);
    if (packet.kind === 'CancelRequest') return this.#close();
    if (packet.kind !== 'StartupMessage') throw new ProtocolError(`unexpected ${packet.kind} after the TLS handshake`);
    this.#user = packet.parameters.get('user') ?? '';
    this.#decoder.setPhase(FramePhase.Normal);
    this.#decoder.setMaxMessageLength(MAX_AUTH_MESSAGE_LENGTH);
    const negotiate = negotiation(packet);
    const endPoint = tlsServerEndPoint((this.#socket as TLSSocket).getX509Certificate()!);
    this.#scram = new ScramServerExchange({
      secret: this.#state.roles.get(this.#user),
      role: this.#user,
      mockKey: this.#state.mockKey,
      tlsServerEndPoint: endPoint,
    });
    this.#socket.write(Buffer.concat([...negotiate, serializeAuthenticationSASL(scramMechanisms(true))]));
    this.#step = Step.AwaitingClientFirst;
  }

  #exchange(): ScramServerExchange {
    if (this.#scram === undefined) throw new Error('no SCRAM exchange under way');
    return this.#scram;
  }

  /** SASLFinal, AuthenticationOk, the session's parameters and key, ReadyForQuery: one write. */
  #welcome(serverFinal: string): void {
    this.#record('ok');
    this.#decoder.setMaxMessageLength(MAX_MESSAGE_LENGTH);
    this.#step = Step.Ready;
    this.#socket.write(
      Buffer.concat([
        serializeAuthenticationSASLFinal(Buffer.from(serverFinal, 'latin1')),
        serializeAuthenticationOk(),
        ...[...PARAMETER_STATUS].map(([name, value]) => serializeParameterStatus(name, value)),
        serializeBackendKeyData(this.#state.nextProcessId++, randomBytes(4)),
        serializeReadyForQuery('I'),
      ]),
    );
  }

  /** Simple Query: one row, the role. The extended protocol is refused, batch by batch. */
  #query(frame: Buffer): void {
    switch (frame[0]) {
      case FrontendMessageType.Query:
        parseQuery(frame);
        this.#socket.write(
          Buffer.concat([
            serializeRowDescription(['user']),
            serializeDataRow([this.#user]),
            serializeCommandComplete('SELECT 1'),
            serializeReadyForQuery('I'),
          ]),
        );
        return;
      case FrontendMessageType.Terminate:
        return this.#close();
      case FrontendMessageType.Sync:
        return this.#readyForQuery();
      case FrontendMessageType.Parse:
      case FrontendMessageType.Bind:
      case FrontendMessageType.Describe:
      case FrontendMessageType.Execute:
      case FrontendMessageType.Close:
      case FrontendMessageType.Flush:
        this.#step = Step.SkippingToSync;
        this.#socket.write(
          buildErrorResponse({ severity: 'ERROR', code: '0A000', message: 'this test server only speaks the simple query protocol' }),
        );
        return;
      default:
        throw new ProtocolError(`invalid frontend message type ${frame[0]}`);
    }
  }

  #readyForQuery(): void {
    this.#step = Step.Ready;
    this.#socket.write(serializeReadyForQuery('I'));
  }

  #refuse(error: unknown): void {
    const { code, message } = this.#refusal(error);
    if (this.#step !== Step.Ready && this.#step !== Step.SkippingToSync) this.#record(code);
    this.#close(buildErrorResponse({ severity: 'FATAL', code, message }));
  }

  /** What the client is told: PostgreSQL's words for a failed login, the library's for bad bytes. */
  #refusal(error: unknown): { code: string; message: string } {
    if (error instanceof ScramAuthError) {
      if (error.sqlState === '28P01') return { code: '28P01', message: `password authentication failed for user "${this.#user}"` };
      return { code: error.sqlState, message: error.message };
    }
    if (error instanceof ProtocolError || error instanceof ScramProtocolError) return { code: '08P01', message: error.message };
    this.#state.errors.push(error instanceof Error ? error : new Error(String(error)));
    return { code: 'XX000', message: 'internal error' };
  }

  #record(outcome: string): void {
    const servername = this.#socket instanceof TLSSocket ? (this.#socket.servername ?? false) : false;
    this.#state.authentications.push({ user: this.#user, mechanism: this.#mechanism, servername, outcome });
  }

  #close(last?: Buffer): void {
    this.#step = Step.Closed;
    this.#decoder.takeBuffered();
    if (last === undefined) this.#socket.end();
    else this.#socket.end(last);
  }
}

/**
 * NegotiateProtocolVersion for a newer minor version or `_pq_.` options we do not know. The
 * field is a whole version (major << 16 | minor) as PostgreSQL writes it and libpq reads it,
 * though the library names it a minor version (see scram-postgres.test.ts).
 */
function negotiation(packet: StartupMessage): Buffer[] {
  if (packet.minorVersion <= LATEST_MINOR_VERSION && packet.protocolOptions.size === 0) return [];
  const newest = Math.min(packet.minorVersion, LATEST_MINOR_VERSION);
  return [serializeNegotiateProtocolVersion(newest, [...packet.protocolOptions.keys()])];
}
