// A minimal Postgres client made only of @tenantgate/wire: SSLRequest, TLS (verify-full), a
// protocol 3.0 StartupMessage, SCRAM-SHA-256(-PLUS) with ScramClientExchange, then simple
// queries. It is the gateway's backend leg (docs/architecture.md, step 10) in miniature, so the tests can
// log into a real PostgreSQL with it.
// @see https://www.postgresql.org/docs/current/protocol-flow.html
import { once } from 'node:events';
import type { X509Certificate } from 'node:crypto';
import { connect as connectTcp, type Socket } from 'node:net';
import { connect as connectTls, type TLSSocket } from 'node:tls';
import {
  BackendMessageType,
  ScramClientExchange,
  parseBackendMessage,
  serializeSASLInitialResponse,
  serializeSASLResponse,
  serializeSSLRequest,
  serializeStartupMessage,
  serializeTerminate,
  type BackendKeyData,
  type BackendMessage,
  type NegotiateProtocolVersion,
  type NoticeFields,
  type ScramChannelBinding,
  type ScramMechanism,
} from '@tenantgate/wire';
import { FrameStream } from './frame-stream.ts';
import { parseCommandComplete, parseDataRow, parseRowDescription, serializeQuery } from './query-messages.ts';

/** Where to connect, and what the server's certificate must chain to and name (verify-full). */
export interface TlsTarget {
  readonly host: string;
  readonly port: number;
  /** SNI and the name checked against the certificate. */
  readonly servername: string;
  readonly ca: string;
}

/** An ErrorResponse from the server, as a client reports it: `code` is the SQLSTATE. */
export class PgServerError extends Error {
  readonly code: string;
  readonly severity: string;
  readonly fields: NoticeFields;
  constructor(fields: NoticeFields) {
    super(fields.message);
    this.name = 'PgServerError';
    this.code = fields.code;
    this.severity = fields.severityNonLocalized ?? fields.severity;
    this.fields = fields;
  }
}

/** The server answered something a client cannot go on with. */
export class UnexpectedMessageError extends Error {}

export type Credentials = { password: string | Uint8Array } | { clientKey: Buffer; serverKey?: Buffer };

export interface LoginOptions extends TlsTarget {
  readonly user: string;
  /** Default `postgres`. */
  readonly database?: string;
  readonly credentials: Credentials;
  /** As libpq's channel_binding; default 'prefer'. */
  readonly channelBinding?: ScramChannelBinding;
  /** Binds to this certificate instead of the one the server presented (to see a refusal). */
  readonly bindingCertificate?: X509Certificate;
  /** Protocol minor version to ask for; default 0 (3.0, what PostgreSQL 15 and libpq 15 speak). */
  readonly minorVersion?: number;
  /** `_pq_.*` protocol options to send. */
  readonly protocolOptions?: ReadonlyMap<string, string>;
}

export interface QueryResult {
  columns: string[];
  rows: (string | null)[][];
  command: string;
}

const SSL_ACCEPTED = 0x53; // S
/** A server that stops answering fails the test in seconds, not at the runner's timeout. */
const ANSWER_TIMEOUT_MS = 5_000;

/** Plain TCP, SSLRequest, 'S', then a TLS handshake that verifies the chain and the name. */
export async function requestTls(target: TlsTarget): Promise<TLSSocket> {
  const socket = connectTcp({ host: target.host, port: target.port });
  try {
    await once(socket, 'connect');
    return await upgradeToTls(socket, target);
  } catch (error) {
    socket.destroy();
    throw error;
  }
}

/** SSLRequest on a connected socket, 'S', then TLS with verify-full. */
export async function upgradeToTls(socket: Socket, target: TlsTarget): Promise<TLSSocket> {
  socket.write(serializeSSLRequest());
  const [reply] = (await once(socket, 'data', { signal: AbortSignal.timeout(ANSWER_TIMEOUT_MS) })) as [Buffer];
  if (reply.length !== 1 || reply[0] !== SSL_ACCEPTED) {
    throw new UnexpectedMessageError(`server answered SSLRequest with 0x${reply.toString('hex')}, not 'S'`);
  }
  const tlsSocket = connectTls({ socket, servername: target.servername, ca: target.ca });
  await once(tlsSocket, 'secureConnect', { signal: AbortSignal.timeout(ANSWER_TIMEOUT_MS) });
  return tlsSocket;
}

/** Logs in over TLS with SCRAM; rejects with PgServerError when the server refuses. */
export async function login(options: LoginOptions): Promise<PgSession> {
  const socket = await requestTls(options);
  try {
    const frames = new FrameStream(socket);
    const parameters = new Map([
      ['user', options.user],
      ['database', options.database ?? 'postgres'],
    ]);
    const minorVersion = options.minorVersion ?? 0;
    socket.write(serializeStartupMessage({ minorVersion, parameters, protocolOptions: options.protocolOptions }));
    const scram = new ScramClientExchange({
      ...options.credentials,
      channelBinding: options.channelBinding,
      peerCertificate: options.bindingCertificate ?? socket.getPeerX509Certificate(),
    });
    const state = await authenticate(socket, frames, scram, minorVersion);
    return new PgSession(socket, frames, { ...state, serverVerified: scram.serverVerified });
  } catch (error) {
    socket.destroy();
    throw error;
  }
}

interface StartupState {
  /** The server's NegotiateProtocolVersion, when it sent one. */
  negotiation: NegotiateProtocolVersion | undefined;
  mechanism: ScramMechanism | undefined;
  parameters: Map<string, string>;
  backendKey: BackendKeyData | undefined;
}

/** Runs the authentication phase up to the first ReadyForQuery. */
async function authenticate(
  socket: TLSSocket,
  frames: FrameStream,
  scram: ScramClientExchange,
  minorVersion: number,
): Promise<StartupState> {
  const state: StartupState = { negotiation: undefined, mechanism: undefined, parameters: new Map(), backendKey: undefined };
  for (;;) {
    // The cancel key's length depends on the version; once the server has negotiated, leave it unset.
    const options = state.negotiation === undefined ? { minorVersion } : {};
    const message = parseBackendMessage(await frames.next(), options);
    switch (message.kind) {
      case 'NegotiateProtocolVersion':
        state.negotiation = message;
        break;
      case 'AuthenticationSASL': {
        const { mechanism, message: first } = scram.start(message.mechanisms);
        state.mechanism = mechanism;
        socket.write(serializeSASLInitialResponse(mechanism, Buffer.from(first, 'utf8')));
        break;
      }
      case 'AuthenticationSASLContinue':
        socket.write(serializeSASLResponse(Buffer.from(await scram.handleServerFirst(message.data), 'utf8')));
        break;
      case 'AuthenticationSASLFinal':
        scram.handleServerFinal(message.data);
        break;
      case 'AuthenticationOk':
        if (scram.state !== 'succeeded') throw new UnexpectedMessageError('AuthenticationOk before SCRAM completed');
        break;
      case 'ParameterStatus':
        state.parameters.set(message.name, message.value);
        break;
      case 'BackendKeyData':
        state.backendKey = message;
        break;
      case 'NoticeResponse':
        break;
      case 'ReadyForQuery':
        return state;
      case 'ErrorResponse':
        throw new PgServerError(message.fields);
      default:
        throw new UnexpectedMessageError(`unexpected ${message.kind} during startup`);
    }
  }
}

/** A logged-in connection. */
export class PgSession {
  readonly socket: TLSSocket;
  readonly #frames: FrameStream;
  /** The SASL mechanism the client chose. */
  readonly mechanism: ScramMechanism | undefined;
  /** The server's NegotiateProtocolVersion, when it sent one. */
  readonly negotiation: NegotiateProtocolVersion | undefined;
  /** True when the server proved it knows the role's secret (ScramClientExchange#serverVerified). */
  readonly serverVerified: boolean;
  readonly parameters: ReadonlyMap<string, string>;
  readonly backendKey: BackendKeyData | undefined;

  constructor(socket: TLSSocket, frames: FrameStream, state: StartupState & { serverVerified: boolean }) {
    this.socket = socket;
    this.#frames = frames;
    this.mechanism = state.mechanism;
    this.negotiation = state.negotiation;
    this.serverVerified = state.serverVerified;
    this.parameters = state.parameters;
    this.backendKey = state.backendKey;
  }

  /** One simple Query; rejects with PgServerError on an ErrorResponse (after ReadyForQuery). */
  async query(sql: string): Promise<QueryResult> {
    this.socket.write(serializeQuery(sql));
    const result: QueryResult = { columns: [], rows: [], command: '' };
    let error: PgServerError | undefined;
    for (;;) {
      const frame = await this.#frames.next();
      switch (frame[0]) {
        case BackendMessageType.RowDescription:
          result.columns = parseRowDescription(frame);
          break;
        case BackendMessageType.DataRow:
          result.rows.push(parseDataRow(frame));
          break;
        case BackendMessageType.CommandComplete:
          result.command = parseCommandComplete(frame);
          break;
        case BackendMessageType.EmptyQueryResponse:
          break;
        default: {
          const message: BackendMessage = parseBackendMessage(frame);
          if (message.kind === 'ErrorResponse') error = new PgServerError(message.fields);
          if (message.kind === 'ReadyForQuery') {
            if (error !== undefined) throw error;
            return result;
          }
        }
      }
    }
  }

  /** Terminate, then wait for the server to close. */
  async close(): Promise<void> {
    if (this.socket.closed) return;
    const closed = once(this.socket, 'close');
    this.socket.end(serializeTerminate());
    await closed;
  }
}
