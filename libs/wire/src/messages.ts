// Messages of the startup and authentication phase, both directions: type codes, shapes, and
// parsers. Every parser takes one whole frame (type byte, Int32 length, body) as handed out by
// FrameDecoder, checks that the declared length matches, and never reads past the frame.
// Buffers in a parsed message are views of the frame, not copies, except the small values a
// caller keeps for the whole session (cancel keys, salts): a view would pin the socket's chunk.
// @see https://www.postgresql.org/docs/current/protocol-message-formats.html
import { isUtf8 } from 'node:buffer';
import { ProtocolError } from './errors.ts';

/** The protocol's major version: 3 since PostgreSQL 7.4. */
export const PROTOCOL_MAJOR_VERSION = 3;

/** Type bytes of messages a server sends. */
export const BackendMessageType = {
  Authentication: 0x52, // R
  BackendKeyData: 0x4b, // K
  BindComplete: 0x32, // 2
  CloseComplete: 0x33, // 3
  CommandComplete: 0x43, // C
  CopyBothResponse: 0x57, // W
  CopyData: 0x64, // d
  CopyDone: 0x63, // c
  CopyInResponse: 0x47, // G
  CopyOutResponse: 0x48, // H
  DataRow: 0x44, // D
  EmptyQueryResponse: 0x49, // I
  ErrorResponse: 0x45, // E
  FunctionCallResponse: 0x56, // V
  NegotiateProtocolVersion: 0x76, // v
  NoData: 0x6e, // n
  NoticeResponse: 0x4e, // N
  NotificationResponse: 0x41, // A
  ParameterDescription: 0x74, // t
  ParameterStatus: 0x53, // S
  ParseComplete: 0x31, // 1
  PortalSuspended: 0x73, // s
  ReadyForQuery: 0x5a, // Z
  RowDescription: 0x54, // T
} as const;
export type BackendMessageType = (typeof BackendMessageType)[keyof typeof BackendMessageType];

/** Type bytes of messages a client sends after the startup packet. */
export const FrontendMessageType = {
  Bind: 0x42, // B
  Close: 0x43, // C
  CopyData: 0x64, // d
  CopyDone: 0x63, // c
  CopyFail: 0x66, // f
  Describe: 0x44, // D
  Execute: 0x45, // E
  Flush: 0x48, // H
  FunctionCall: 0x46, // F
  Parse: 0x50, // P
  /** PasswordMessage, SASLInitialResponse, SASLResponse and GSSResponse share this byte. */
  PasswordMessage: 0x70, // p
  Query: 0x51, // Q
  Sync: 0x53, // S
  Terminate: 0x58, // X
} as const;
export type FrontendMessageType = (typeof FrontendMessageType)[keyof typeof FrontendMessageType];

/** The Int32 that opens every Authentication ('R') message. */
export const AuthenticationCode = {
  Ok: 0,
  KerberosV5: 2,
  CleartextPassword: 3,
  MD5Password: 5,
  GSS: 7,
  GSSContinue: 8,
  SSPI: 9,
  SASL: 10,
  SASLContinue: 11,
  SASLFinal: 12,
} as const;
export type AuthenticationCode = (typeof AuthenticationCode)[keyof typeof AuthenticationCode];

/** Transaction status carried by ReadyForQuery. */
export const TransactionStatus = {
  Idle: 'I',
  InTransaction: 'T',
  Failed: 'E',
} as const;
export type TransactionStatus = (typeof TransactionStatus)[keyof typeof TransactionStatus];

/**
 * Field codes of ErrorResponse and NoticeResponse, keyed by the property name used in
 * {@link NoticeFields}. The declaration order is the order in which serializers write them.
 * @see https://www.postgresql.org/docs/current/protocol-error-fields.html
 */
export const NoticeFieldCode = {
  severity: 0x53, // S
  severityNonLocalized: 0x56, // V
  code: 0x43, // C
  message: 0x4d, // M
  detail: 0x44, // D
  hint: 0x48, // H
  position: 0x50, // P
  internalPosition: 0x70, // p
  internalQuery: 0x71, // q
  where: 0x57, // W
  schema: 0x73, // s
  table: 0x74, // t
  column: 0x63, // c
  dataType: 0x64, // d
  constraint: 0x6e, // n
  file: 0x46, // F
  line: 0x4c, // L
  routine: 0x52, // R
} as const;
export type NoticeFieldName = keyof typeof NoticeFieldCode;

/** The fields of an ErrorResponse or NoticeResponse. S, C and M are always present. */
export type NoticeFields = { severity: string; code: string; message: string } & {
  [K in Exclude<NoticeFieldName, 'severity' | 'code' | 'message'>]?: string;
} & {
  /** Fields of codes this library does not know, in wire order (clients must ignore them). */
  unknown?: [code: number, value: string][];
};

/** Largest cancel key PostgreSQL accepts since protocol 3.2 (3.0 keys are exactly 4 bytes). */
export const MAX_CANCEL_KEY_LENGTH = 256;
export const MIN_CANCEL_KEY_LENGTH = 4;

export type AuthenticationOk = { kind: 'AuthenticationOk' };
export type AuthenticationCleartextPassword = { kind: 'AuthenticationCleartextPassword' };
export type AuthenticationMD5Password = { kind: 'AuthenticationMD5Password'; salt: Buffer };
export type AuthenticationSASL = { kind: 'AuthenticationSASL'; mechanisms: string[] };
export type AuthenticationSASLContinue = { kind: 'AuthenticationSASLContinue'; data: Buffer };
export type AuthenticationSASLFinal = { kind: 'AuthenticationSASLFinal'; data: Buffer };
export type ParameterStatus = { kind: 'ParameterStatus'; name: string; value: string };
export type BackendKeyData = { kind: 'BackendKeyData'; processId: number; secretKey: Buffer };
export type ReadyForQuery = { kind: 'ReadyForQuery'; status: TransactionStatus };
export type ErrorResponse = { kind: 'ErrorResponse'; fields: NoticeFields };
export type NoticeResponse = { kind: 'NoticeResponse'; fields: NoticeFields };
export type NegotiateProtocolVersion = {
  kind: 'NegotiateProtocolVersion';
  newestMinorVersion: number;
  unrecognizedOptions: string[];
};

export type AuthenticationMessage =
  | AuthenticationOk
  | AuthenticationCleartextPassword
  | AuthenticationMD5Password
  | AuthenticationSASL
  | AuthenticationSASLContinue
  | AuthenticationSASLFinal;

/** Server messages of the startup phase (before the first ReadyForQuery, and errors after). */
export type BackendMessage =
  AuthenticationMessage | ParameterStatus | BackendKeyData | ReadyForQuery | ErrorResponse | NoticeResponse | NegotiateProtocolVersion;

export type PasswordMessage = { kind: 'PasswordMessage'; password: Buffer };
/** `data` is null when the client sent no initial response (length -1). */
export type SASLInitialResponse = { kind: 'SASLInitialResponse'; mechanism: string; data: Buffer | null };
export type SASLResponse = { kind: 'SASLResponse'; data: Buffer };
export type Terminate = { kind: 'Terminate' };

/** Client messages of the authentication phase. */
export type FrontendMessage = PasswordMessage | SASLInitialResponse | SASLResponse | Terminate;

/**
 * What the server last asked for, which decides how a 'p' message is read: the byte alone
 * does not say whether it carries a password, a SASL initial response, or a SASL response.
 */
export const PasswordResponseKind = {
  Password: 'PasswordMessage',
  SASLInitial: 'SASLInitialResponse',
  SASL: 'SASLResponse',
} as const;
export type PasswordResponseKind = (typeof PasswordResponseKind)[keyof typeof PasswordResponseKind];

/** Printable name of a type byte for error messages (`'Q'`, or `0x00` when not printable). */
export function describeType(type: number): string {
  return type >= 0x21 && type <= 0x7e ? `'${String.fromCharCode(type)}'` : `0x${type.toString(16).padStart(2, '0')}`;
}

/**
 * Bounds-checked cursor over one message body. Every read that would cross the end raises a
 * ProtocolError naming the message, so parsers never index past what the peer declared.
 */
export class MessageReader {
  readonly #buf: Buffer;
  readonly #what: string;
  #offset: number;

  constructor(buf: Buffer, offset: number, what: string) {
    this.#buf = buf;
    this.#offset = offset;
    this.#what = what;
  }

  get remaining(): number {
    return this.#buf.length - this.#offset;
  }

  byte(): number {
    this.#need(1);
    return this.#buf[this.#offset++]!;
  }

  int32(): number {
    this.#need(4);
    const value = this.#buf.readInt32BE(this.#offset);
    this.#offset += 4;
    return value;
  }

  bytes(length: number): Buffer {
    this.#need(length);
    const view = this.#buf.subarray(this.#offset, this.#offset + length);
    this.#offset += length;
    return view;
  }

  rest(): Buffer {
    return this.bytes(this.remaining);
  }

  /** A NUL-terminated string without its NUL, as raw bytes. */
  cstringBytes(): Buffer {
    const end = this.#buf.indexOf(0, this.#offset);
    if (end === -1) throw new ProtocolError(`${this.#what}: string is not NUL-terminated`);
    const view = this.#buf.subarray(this.#offset, end);
    this.#offset = end + 1;
    return view;
  }

  /**
   * A NUL-terminated string. With `strict`, bytes that are not UTF-8 are refused instead of
   * being replaced by U+FFFD: two different names must never decode to the same string.
   */
  cstring(strict = false): string {
    const bytes = this.cstringBytes();
    if (strict && !isUtf8(bytes)) throw new ProtocolError(`${this.#what}: string is not valid UTF-8`);
    return bytes.toString('utf8');
  }

  /** Peeks at the next byte without consuming it (undefined at the end). */
  peek(): number | undefined {
    return this.#buf[this.#offset];
  }

  /** Asserts that the body was consumed exactly. */
  end(): void {
    if (this.remaining !== 0) throw new ProtocolError(`${this.#what}: ${this.remaining} unexpected trailing bytes`);
  }

  #need(n: number): void {
    if (n < 0 || this.#buf.length - this.#offset < n) throw new ProtocolError(`${this.#what}: message is truncated`);
  }
}

/**
 * Checks the frame header (type and declared length) and returns a reader over the body.
 * `expected` is the type byte the caller dispatched on.
 */
export function readFrame(frame: Buffer, expected: number, what: string): MessageReader {
  if (frame.length < 5) throw new ProtocolError(`${what}: frame is shorter than its header`);
  if (frame[0] !== expected) {
    throw new ProtocolError(`${what}: expected type ${describeType(expected)}, got ${describeType(frame[0]!)}`);
  }
  if (frame.readInt32BE(1) !== frame.length - 1) throw new ProtocolError(`${what}: declared length does not match`);
  return new MessageReader(frame, 5, what);
}

// ---------------------------------------------------------------------------------------------
// Backend messages

export interface BackendParseOptions {
  /**
   * Minor protocol version negotiated with this server. Below 2 (protocol 3.0) a cancel key
   * must be exactly 4 bytes; from 3.2 on it may be 4..256. Unset: accept 4..256.
   */
  minorVersion?: number;
}

/** Parses a server message of the startup phase; any other type is a ProtocolError. */
export function parseBackendMessage(frame: Buffer, options: BackendParseOptions = {}): BackendMessage {
  const type = frame[0];
  switch (type) {
    case BackendMessageType.Authentication:
      return parseAuthentication(frame);
    case BackendMessageType.ParameterStatus:
      return parseParameterStatus(frame);
    case BackendMessageType.BackendKeyData:
      return parseBackendKeyData(frame, options.minorVersion);
    case BackendMessageType.ReadyForQuery:
      return parseReadyForQuery(frame);
    case BackendMessageType.ErrorResponse:
      return { kind: 'ErrorResponse', fields: parseNoticeFields(readFrame(frame, type, 'ErrorResponse')) };
    case BackendMessageType.NoticeResponse:
      return { kind: 'NoticeResponse', fields: parseNoticeFields(readFrame(frame, type, 'NoticeResponse')) };
    case BackendMessageType.NegotiateProtocolVersion:
      return parseNegotiateProtocolVersion(frame);
    default:
      throw new ProtocolError(`unexpected server message type ${describeType(type ?? 0)} during startup`);
  }
}

/** @see https://www.postgresql.org/docs/current/protocol-flow.html#PROTOCOL-FLOW-START-UP */
export function parseAuthentication(frame: Buffer): AuthenticationMessage {
  const reader = readFrame(frame, BackendMessageType.Authentication, 'Authentication');
  const code = reader.int32();
  switch (code) {
    case AuthenticationCode.Ok:
      reader.end();
      return { kind: 'AuthenticationOk' };
    case AuthenticationCode.CleartextPassword:
      reader.end();
      return { kind: 'AuthenticationCleartextPassword' };
    case AuthenticationCode.MD5Password: {
      const salt = Buffer.from(reader.bytes(4));
      reader.end();
      return { kind: 'AuthenticationMD5Password', salt };
    }
    case AuthenticationCode.SASL:
      return { kind: 'AuthenticationSASL', mechanisms: readMechanisms(reader) };
    case AuthenticationCode.SASLContinue:
      return { kind: 'AuthenticationSASLContinue', data: reader.rest() };
    case AuthenticationCode.SASLFinal:
      return { kind: 'AuthenticationSASLFinal', data: reader.rest() };
    case AuthenticationCode.KerberosV5:
    case AuthenticationCode.GSS:
    case AuthenticationCode.GSSContinue:
    case AuthenticationCode.SSPI:
      throw new ProtocolError(`server requested an unsupported authentication method (${code})`);
    default:
      throw new ProtocolError(`server sent an unknown authentication request (${code})`);
  }
}

/** Mechanism names, each NUL-terminated, then an empty name; at least one is required. */
function readMechanisms(reader: MessageReader): string[] {
  const mechanisms: string[] = [];
  for (;;) {
    const name = reader.cstring();
    if (name === '') break;
    mechanisms.push(name);
  }
  reader.end();
  if (mechanisms.length === 0) throw new ProtocolError('AuthenticationSASL: no mechanisms offered');
  return mechanisms;
}

export function parseParameterStatus(frame: Buffer): ParameterStatus {
  const reader = readFrame(frame, BackendMessageType.ParameterStatus, 'ParameterStatus');
  const name = reader.cstring();
  const value = reader.cstring();
  reader.end();
  return { kind: 'ParameterStatus', name, value };
}

/** @see https://www.postgresql.org/docs/current/protocol-message-formats.html#PROTOCOL-MESSAGE-FORMATS-BACKENDKEYDATA */
export function parseBackendKeyData(frame: Buffer, minorVersion?: number): BackendKeyData {
  const reader = readFrame(frame, BackendMessageType.BackendKeyData, 'BackendKeyData');
  const processId = reader.int32();
  // A copy of its own, not Buffer.from's slice of the shared 64 KiB pool: the key lives as long as
  // the session (a proxy keeps it for cancels), and a long-lived slice keeps its whole pool alive.
  const rest = reader.rest();
  const secretKey = Buffer.alloc(rest.length);
  rest.copy(secretKey);
  checkCancelKeyLength(secretKey.length, minorVersion, 'BackendKeyData');
  return { kind: 'BackendKeyData', processId, secretKey };
}

/** Protocol 3.0 keys are 4 bytes; 3.2 allows 4..256 (PostgreSQL 18 sends 32). */
export function checkCancelKeyLength(length: number, minorVersion: number | undefined, what: string): void {
  const max = minorVersion !== undefined && minorVersion < 2 ? MIN_CANCEL_KEY_LENGTH : MAX_CANCEL_KEY_LENGTH;
  if (length < MIN_CANCEL_KEY_LENGTH || length > max) {
    throw new ProtocolError(`${what}: secret key of ${length} bytes (expected ${MIN_CANCEL_KEY_LENGTH}..${max})`);
  }
}

const STATUS_BY_BYTE: ReadonlyMap<number, TransactionStatus> = new Map([
  [0x49, TransactionStatus.Idle],
  [0x54, TransactionStatus.InTransaction],
  [0x45, TransactionStatus.Failed],
]);

/** The transaction status for a ReadyForQuery status byte, or undefined if it is not one. */
export function transactionStatusOf(byte: number): TransactionStatus | undefined {
  return STATUS_BY_BYTE.get(byte);
}

export function parseReadyForQuery(frame: Buffer): ReadyForQuery {
  const reader = readFrame(frame, BackendMessageType.ReadyForQuery, 'ReadyForQuery');
  const byte = reader.byte();
  reader.end();
  const status = transactionStatusOf(byte);
  if (status === undefined) throw new ProtocolError(`ReadyForQuery: unknown transaction status ${describeType(byte)}`);
  return { kind: 'ReadyForQuery', status };
}

const FIELD_NAME_BY_CODE: ReadonlyMap<number, NoticeFieldName> = new Map(
  Object.entries(NoticeFieldCode).map(([name, code]) => [code, name as NoticeFieldName]),
);

/** Reads `(code, string)*` then a zero byte; S, C and M must be present, no code twice. */
function parseNoticeFields(reader: MessageReader): NoticeFields {
  const known: Partial<Record<NoticeFieldName, string>> = {};
  const unknown: [number, string][] = [];
  for (let code = reader.byte(); code !== 0; code = reader.byte()) {
    const value = reader.cstring();
    const name = FIELD_NAME_BY_CODE.get(code);
    if (name === undefined) unknown.push([code, value]);
    else if (known[name] !== undefined) throw new ProtocolError(`error field ${describeType(code)} appears twice`);
    else known[name] = value;
  }
  reader.end();
  const { severity, code, message } = known;
  if (severity === undefined || code === undefined || message === undefined) {
    throw new ProtocolError('error or notice lacks a severity, code or message field');
  }
  const fields: NoticeFields = { ...known, severity, code, message };
  if (unknown.length > 0) fields.unknown = unknown;
  return fields;
}

/**
 * The version field is documented as "newest minor version", but servers send a whole protocol
 * version (PostgreSQL 15 sends 0x00030000 for 3.0) and libpq reads it as one. Accept both forms
 * and report the minor number.
 * @see https://www.postgresql.org/docs/current/protocol-message-formats.html#PROTOCOL-MESSAGE-FORMATS-NEGOTIATEPROTOCOLVERSION
 */
export function parseNegotiateProtocolVersion(frame: Buffer): NegotiateProtocolVersion {
  const reader = readFrame(frame, BackendMessageType.NegotiateProtocolVersion, 'NegotiateProtocolVersion');
  const version = reader.int32();
  const count = reader.int32();
  const major = version >>> 16;
  // Each option takes at least its NUL, so a count above the bytes left is a lie.
  if (version < 0 || (major !== 0 && major !== PROTOCOL_MAJOR_VERSION) || count < 0 || count > reader.remaining) {
    throw new ProtocolError('NegotiateProtocolVersion: bad version or option count');
  }
  const unrecognizedOptions: string[] = [];
  for (let i = 0; i < count; i++) unrecognizedOptions.push(reader.cstring());
  reader.end();
  return { kind: 'NegotiateProtocolVersion', newestMinorVersion: version & 0xffff, unrecognizedOptions };
}

// ---------------------------------------------------------------------------------------------
// Frontend messages

/**
 * Parses a client message of the authentication phase: a 'p' read as `expected` says, or a
 * Terminate. Anything else is a ProtocolError (PostgreSQL: "expected password response").
 */
export function parseFrontendMessage(frame: Buffer, expected: PasswordResponseKind): FrontendMessage {
  if (frame[0] === FrontendMessageType.Terminate) return parseTerminate(frame);
  if (frame[0] !== FrontendMessageType.PasswordMessage) {
    throw new ProtocolError(`expected a password response, got message type ${describeType(frame[0] ?? 0)}`);
  }
  switch (expected) {
    case PasswordResponseKind.Password:
      return parsePasswordMessage(frame);
    case PasswordResponseKind.SASLInitial:
      return parseSASLInitialResponse(frame);
    case PasswordResponseKind.SASL:
      return parseSASLResponse(frame);
  }
}

/** The password is raw bytes: PostgreSQL does not require it to be UTF-8. */
export function parsePasswordMessage(frame: Buffer): PasswordMessage {
  const reader = readFrame(frame, FrontendMessageType.PasswordMessage, 'PasswordMessage');
  const password = reader.cstringBytes();
  reader.end();
  return { kind: 'PasswordMessage', password };
}

/** @see https://www.postgresql.org/docs/current/sasl-authentication.html */
export function parseSASLInitialResponse(frame: Buffer): SASLInitialResponse {
  const reader = readFrame(frame, FrontendMessageType.PasswordMessage, 'SASLInitialResponse');
  const mechanism = reader.cstring(true);
  const length = reader.int32();
  if (length < -1) throw new ProtocolError('SASLInitialResponse: negative data length');
  const data = length === -1 ? null : reader.bytes(length);
  reader.end();
  return { kind: 'SASLInitialResponse', mechanism, data };
}

export function parseSASLResponse(frame: Buffer): SASLResponse {
  const reader = readFrame(frame, FrontendMessageType.PasswordMessage, 'SASLResponse');
  return { kind: 'SASLResponse', data: reader.rest() };
}

export function parseTerminate(frame: Buffer): Terminate {
  readFrame(frame, FrontendMessageType.Terminate, 'Terminate').end();
  return { kind: 'Terminate' };
}
