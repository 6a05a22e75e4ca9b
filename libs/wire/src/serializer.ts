// Serializers for the messages of messages.ts. Each computes the exact size first, allocates one
// Buffer, and writes into it; FrameWriter.finish() asserts the size was right.
// Strings on the wire are NUL-terminated, so a string holding a NUL would end early and smuggle
// the rest in as further fields or parameters: every string is checked before it is written.
// @see https://www.postgresql.org/docs/current/protocol-message-formats.html
import { ProtocolError } from './errors.ts';
import {
  PROTOCOL_MAJOR_VERSION,
  AuthenticationCode,
  BackendMessageType,
  FrontendMessageType,
  NoticeFieldCode,
  TransactionStatus,
  checkCancelKeyLength,
  type BackendMessage,
  type FrontendMessage,
  type NoticeFieldName,
  type NoticeFields,
} from './messages.ts';

/** Encoded size of `value` as a C string (UTF-8 bytes plus the NUL); refuses embedded NULs. */
export function cstringLength(value: string, what = 'string'): number {
  if (value.includes('\0')) throw new ProtocolError(`cannot encode ${what}: it contains a NUL byte`);
  return Buffer.byteLength(value, 'utf8') + 1;
}

/** Writes one frame into a Buffer of known size. */
export class FrameWriter {
  readonly #buf: Buffer;
  #offset = 0;

  private constructor(size: number) {
    this.#buf = Buffer.allocUnsafe(size);
  }

  /** A typed message: type byte, Int32 length (body + 4), then `bodyLength` bytes to write. */
  static message(type: number, bodyLength: number): FrameWriter {
    const writer = new FrameWriter(5 + bodyLength);
    return writer.byte(type).int32(4 + bodyLength);
  }

  /** An untyped startup-phase packet: Int32 length (body + 4), then the body. */
  static startup(bodyLength: number): FrameWriter {
    return new FrameWriter(4 + bodyLength).int32(4 + bodyLength);
  }

  byte(value: number): this {
    this.#buf[this.#offset++] = value;
    return this;
  }

  int16(value: number): this {
    this.#offset = this.#buf.writeInt16BE(value, this.#offset);
    return this;
  }

  int32(value: number): this {
    this.#offset = this.#buf.writeInt32BE(value, this.#offset);
    return this;
  }

  bytes(value: Uint8Array): this {
    this.#buf.set(value, this.#offset);
    this.#offset += value.length;
    return this;
  }

  /** Writes a string checked by {@link cstringLength} and its NUL. */
  cstring(value: string): this {
    this.#offset += this.#buf.write(value, this.#offset, 'utf8');
    this.#buf[this.#offset++] = 0;
    return this;
  }

  finish(): Buffer {
    if (this.#offset !== this.#buf.length) {
      throw new Error(`FrameWriter: wrote ${this.#offset} of ${this.#buf.length} bytes`);
    }
    return this.#buf;
  }
}

// ---------------------------------------------------------------------------------------------
// Backend messages

function authentication(code: number, extra: Uint8Array | null): Buffer {
  const writer = FrameWriter.message(BackendMessageType.Authentication, 4 + (extra?.length ?? 0)).int32(code);
  if (extra !== null) writer.bytes(extra);
  return writer.finish();
}

export function serializeAuthenticationOk(): Buffer {
  return authentication(AuthenticationCode.Ok, null);
}

export function serializeAuthenticationCleartextPassword(): Buffer {
  return authentication(AuthenticationCode.CleartextPassword, null);
}

export function serializeAuthenticationMD5Password(salt: Uint8Array): Buffer {
  if (salt.length !== 4) throw new ProtocolError('cannot encode AuthenticationMD5Password: salt must be 4 bytes');
  return authentication(AuthenticationCode.MD5Password, salt);
}

/** Mechanisms in order of preference, e.g. `['SCRAM-SHA-256-PLUS', 'SCRAM-SHA-256']`. */
export function serializeAuthenticationSASL(mechanisms: readonly string[]): Buffer {
  if (mechanisms.length === 0) throw new ProtocolError('cannot encode AuthenticationSASL: no mechanisms');
  let length = 4 + 1;
  for (const name of mechanisms) {
    if (name === '') throw new ProtocolError('cannot encode AuthenticationSASL: empty mechanism name');
    length += cstringLength(name, 'SASL mechanism');
  }
  const writer = FrameWriter.message(BackendMessageType.Authentication, length).int32(AuthenticationCode.SASL);
  for (const name of mechanisms) writer.cstring(name);
  return writer.byte(0).finish();
}

export function serializeAuthenticationSASLContinue(data: Uint8Array): Buffer {
  return authentication(AuthenticationCode.SASLContinue, data);
}

export function serializeAuthenticationSASLFinal(data: Uint8Array): Buffer {
  return authentication(AuthenticationCode.SASLFinal, data);
}

export function serializeParameterStatus(name: string, value: string): Buffer {
  const length = cstringLength(name, 'parameter name') + cstringLength(value, 'parameter value');
  return FrameWriter.message(BackendMessageType.ParameterStatus, length).cstring(name).cstring(value).finish();
}

/**
 * `minorVersion` is the protocol version of the leg the message goes to: a 3.0 client can
 * only take a 4-byte key.
 */
export function serializeBackendKeyData(processId: number, secretKey: Uint8Array, minorVersion?: number): Buffer {
  checkCancelKeyLength(secretKey.length, minorVersion, 'cannot encode BackendKeyData');
  return FrameWriter.message(BackendMessageType.BackendKeyData, 4 + secretKey.length)
    .int32(processId)
    .bytes(secretKey)
    .finish();
}

const STATUS_BYTE: Readonly<Record<TransactionStatus, number>> = {
  [TransactionStatus.Idle]: 0x49, // I
  [TransactionStatus.InTransaction]: 0x54, // T
  [TransactionStatus.Failed]: 0x45, // E
};

export function serializeReadyForQuery(status: TransactionStatus): Buffer {
  const byte = STATUS_BYTE[status];
  if (byte === undefined) throw new ProtocolError(`cannot encode ReadyForQuery: bad status ${String(status)}`);
  return FrameWriter.message(BackendMessageType.ReadyForQuery, 1).byte(byte).finish();
}

const FIELD_ENTRIES = Object.entries(NoticeFieldCode) as [NoticeFieldName, number][];

function noticeFields(type: number, fields: NoticeFields): Buffer {
  let length = 1;
  for (const [name] of FIELD_ENTRIES) {
    const value = fields[name];
    if (value !== undefined) length += 1 + cstringLength(value, `error field ${name}`);
  }
  for (const [code, value] of fields.unknown ?? []) {
    if (!Number.isInteger(code) || code < 1 || code > 255) throw new ProtocolError('cannot encode error field code');
    length += 1 + cstringLength(value, 'error field');
  }
  const writer = FrameWriter.message(type, length);
  for (const [name, code] of FIELD_ENTRIES) {
    const value = fields[name];
    if (value !== undefined) writer.byte(code).cstring(value);
  }
  for (const [code, value] of fields.unknown ?? []) writer.byte(code).cstring(value);
  return writer.byte(0).finish();
}

export function serializeErrorResponse(fields: NoticeFields): Buffer {
  return noticeFields(BackendMessageType.ErrorResponse, fields);
}

export function serializeNoticeResponse(fields: NoticeFields): Buffer {
  return noticeFields(BackendMessageType.NoticeResponse, fields);
}

/**
 * The reply to a StartupMessage asking for a newer minor version or for `_pq_.` options. The
 * field carries the whole version (3.minor), as PostgreSQL writes it and libpq reads it.
 */
export function serializeNegotiateProtocolVersion(newestMinorVersion: number, unrecognizedOptions: readonly string[]): Buffer {
  if (!Number.isInteger(newestMinorVersion) || newestMinorVersion < 0 || newestMinorVersion > 0xffff) {
    throw new RangeError(`protocol minor version out of range: ${newestMinorVersion}`);
  }
  let length = 8;
  for (const option of unrecognizedOptions) length += cstringLength(option, 'protocol option');
  const writer = FrameWriter.message(BackendMessageType.NegotiateProtocolVersion, length)
    .int32(((PROTOCOL_MAJOR_VERSION << 16) | newestMinorVersion) >>> 0)
    .int32(unrecognizedOptions.length);
  for (const option of unrecognizedOptions) writer.cstring(option);
  return writer.finish();
}

export function serializeBackendMessage(message: BackendMessage, minorVersion?: number): Buffer {
  switch (message.kind) {
    case 'AuthenticationOk':
      return serializeAuthenticationOk();
    case 'AuthenticationCleartextPassword':
      return serializeAuthenticationCleartextPassword();
    case 'AuthenticationMD5Password':
      return serializeAuthenticationMD5Password(message.salt);
    case 'AuthenticationSASL':
      return serializeAuthenticationSASL(message.mechanisms);
    case 'AuthenticationSASLContinue':
      return serializeAuthenticationSASLContinue(message.data);
    case 'AuthenticationSASLFinal':
      return serializeAuthenticationSASLFinal(message.data);
    case 'ParameterStatus':
      return serializeParameterStatus(message.name, message.value);
    case 'BackendKeyData':
      return serializeBackendKeyData(message.processId, message.secretKey, minorVersion);
    case 'ReadyForQuery':
      return serializeReadyForQuery(message.status);
    case 'ErrorResponse':
      return serializeErrorResponse(message.fields);
    case 'NoticeResponse':
      return serializeNoticeResponse(message.fields);
    case 'NegotiateProtocolVersion':
      return serializeNegotiateProtocolVersion(message.newestMinorVersion, message.unrecognizedOptions);
  }
}

// ---------------------------------------------------------------------------------------------
// Error and notice builders

export type ErrorSeverity = 'ERROR' | 'FATAL' | 'PANIC';
export type NoticeSeverity = 'WARNING' | 'NOTICE' | 'DEBUG' | 'INFO' | 'LOG';

/** Everything of {@link NoticeFields} but the severities, which the builder sets. */
export type NoticeOptions<S extends string> = Omit<NoticeFields, 'severity' | 'severityNonLocalized'> & {
  severity: S;
};

const SQLSTATE = /^[0-9A-Z]{5}$/;

function withSeverity(options: NoticeOptions<string>): NoticeFields {
  if (!SQLSTATE.test(options.code)) throw new ProtocolError(`cannot encode SQLSTATE ${JSON.stringify(options.code)}`);
  // V is the untranslated severity that clients rely on since PostgreSQL 9.6; the gateway
  // never localizes, so S and V are the same.
  return { ...options, severityNonLocalized: options.severity };
}

/**
 * An ErrorResponse for a client: `buildErrorResponse({ severity: 'FATAL', code: '08P01',
 * message: 'invalid startup packet' })`. Messages are for the person holding the connection
 * string; never put internal addresses in them.
 */
export function buildErrorResponse(options: NoticeOptions<ErrorSeverity>): Buffer {
  return serializeErrorResponse(withSeverity(options));
}

export function buildNoticeResponse(options: NoticeOptions<NoticeSeverity>): Buffer {
  return serializeNoticeResponse(withSeverity(options));
}

// ---------------------------------------------------------------------------------------------
// Frontend messages

/** A cleartext password, or an MD5 response (`'md5' + hex`). A Buffer is written as is. */
export function serializePasswordMessage(password: string | Uint8Array): Buffer {
  const writer =
    typeof password === 'string'
      ? FrameWriter.message(FrontendMessageType.PasswordMessage, cstringLength(password, 'password')).cstring(password)
      : FrameWriter.message(FrontendMessageType.PasswordMessage, passwordBytesLength(password)).bytes(password).byte(0);
  return writer.finish();
}

function passwordBytesLength(password: Uint8Array): number {
  if (password.includes(0)) throw new ProtocolError('cannot encode password: it contains a NUL byte');
  return password.length + 1;
}

/** `data` null sends length -1: the mechanism was chosen but there is no initial response. */
export function serializeSASLInitialResponse(mechanism: string, data: Uint8Array | null): Buffer {
  const length = cstringLength(mechanism, 'SASL mechanism') + 4 + (data?.length ?? 0);
  const writer = FrameWriter.message(FrontendMessageType.PasswordMessage, length)
    .cstring(mechanism)
    .int32(data === null ? -1 : data.length);
  if (data !== null) writer.bytes(data);
  return writer.finish();
}

export function serializeSASLResponse(data: Uint8Array): Buffer {
  return FrameWriter.message(FrontendMessageType.PasswordMessage, data.length).bytes(data).finish();
}

export function serializeTerminate(): Buffer {
  return FrameWriter.message(FrontendMessageType.Terminate, 0).finish();
}

export function serializeFrontendMessage(message: FrontendMessage): Buffer {
  switch (message.kind) {
    case 'PasswordMessage':
      return serializePasswordMessage(message.password);
    case 'SASLInitialResponse':
      return serializeSASLInitialResponse(message.mechanism, message.data);
    case 'SASLResponse':
      return serializeSASLResponse(message.data);
    case 'Terminate':
      return serializeTerminate();
  }
}
