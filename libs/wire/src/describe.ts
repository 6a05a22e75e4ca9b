// One message as a log line's fields: its name and what a person debugging a client needs,
// with every secret left out. For the gateway's protocol trace: a message may be cut short (only
// its first bytes are kept), so every read here is tolerant and never throws. Passwords, SCRAM
// messages (nonces, proofs, signatures) and cancel keys are always redacted; query text, bound
// parameters and error messages (which may quote values) only appear with `includeQueries`.
// @see https://www.postgresql.org/docs/current/protocol-message-formats.html
import { AuthenticationCode, BackendMessageType, FrontendMessageType, NoticeFieldCode, PasswordResponseKind } from './messages.ts';

export interface DescribeOptions {
  /** Query text (Query, Parse, FunctionCall), notification payloads and error messages. */
  readonly includeQueries: boolean;
}

export type DescriptionValue = string | number | boolean | readonly string[];

/** `type` is the message's name; the other fields depend on it. */
export type MessageDescription = { readonly type: string } & Readonly<Record<string, DescriptionValue>>;

export const REDACTED = '[redacted]';

/** Longest query text or message a description carries; longer ones are cut and marked. */
export const MAX_DESCRIBED_TEXT = 2048;

const BACKEND_NAMES = invert(BackendMessageType);
const FRONTEND_NAMES = invert(FrontendMessageType);
const AUTHENTICATION_NAMES: Readonly<Record<number, string>> = {
  [AuthenticationCode.Ok]: 'AuthenticationOk',
  [AuthenticationCode.KerberosV5]: 'AuthenticationKerberosV5',
  [AuthenticationCode.CleartextPassword]: 'AuthenticationCleartextPassword',
  [AuthenticationCode.MD5Password]: 'AuthenticationMD5Password',
  [AuthenticationCode.GSS]: 'AuthenticationGSS',
  [AuthenticationCode.GSSContinue]: 'AuthenticationGSSContinue',
  [AuthenticationCode.SSPI]: 'AuthenticationSSPI',
  [AuthenticationCode.SASL]: 'AuthenticationSASL',
  [AuthenticationCode.SASLContinue]: 'AuthenticationSASLContinue',
  [AuthenticationCode.SASLFinal]: 'AuthenticationSASLFinal',
};

/**
 * A message a server (or the gateway, in a server's place) sends. `body` is the message after
 * its 5-byte header, or its first bytes; `length` is the declared length.
 */
export function describeBackendMessage(type: number, body: Buffer, options: DescribeOptions): MessageDescription {
  const at = new Cursor(body);
  switch (type) {
    case BackendMessageType.Authentication:
      return describeAuthentication(at);
    case BackendMessageType.BackendKeyData:
      return { type: 'BackendKeyData', processId: at.int32(), secretKey: REDACTED };
    case BackendMessageType.ParameterStatus:
      return { type: 'ParameterStatus', name: at.cstring(), value: at.cstring() };
    case BackendMessageType.ReadyForQuery:
      return { type: 'ReadyForQuery', status: String.fromCharCode(at.byte()) };
    case BackendMessageType.CommandComplete:
      return { type: 'CommandComplete', tag: at.cstring() };
    case BackendMessageType.ErrorResponse:
    case BackendMessageType.NoticeResponse:
      return { type: nameOf(BACKEND_NAMES, type), ...noticeFields(at, options) };
    case BackendMessageType.RowDescription:
      return { type: 'RowDescription', fields: at.int16() };
    case BackendMessageType.DataRow:
      return { type: 'DataRow', columns: at.int16() };
    case BackendMessageType.CopyInResponse:
    case BackendMessageType.CopyOutResponse:
    case BackendMessageType.CopyBothResponse:
      return { type: nameOf(BACKEND_NAMES, type), format: at.byte() === 1 ? 'binary' : 'text', columns: at.int16() };
    case BackendMessageType.NotificationResponse: {
      const processId = at.int32();
      const channel = at.cstring();
      return { type: 'NotificationResponse', processId, channel, ...(options.includeQueries ? { payload: text(at.cstring()) } : {}) };
    }
    case BackendMessageType.NegotiateProtocolVersion:
      return { type: 'NegotiateProtocolVersion', minorVersion: at.int32() };
    default:
      return { type: nameOf(BACKEND_NAMES, type) };
  }
}

/**
 * A message a client (or the gateway, in a client's place) sends after its startup packet.
 * `expected` names a `p` message, which the protocol leaves to the context.
 */
export function describeFrontendMessage(
  type: number,
  body: Buffer,
  options: DescribeOptions & { readonly expected?: PasswordResponseKind },
): MessageDescription {
  const at = new Cursor(body);
  switch (type) {
    case FrontendMessageType.PasswordMessage:
      return describePasswordResponse(at, options.expected ?? PasswordResponseKind.Password);
    case FrontendMessageType.Query:
      return { type: 'Query', ...(options.includeQueries ? { query: text(at.cstring()) } : {}) };
    case FrontendMessageType.Parse: {
      const statement = at.cstring();
      const query = at.cstring();
      return { type: 'Parse', statement, ...(options.includeQueries ? { query: text(query) } : {}), parameterTypes: at.int16() };
    }
    case FrontendMessageType.Bind: {
      const portal = at.cstring();
      const statement = at.cstring();
      at.advance(2 * at.int16()); // the parameters' format codes
      return { type: 'Bind', portal, statement, parameters: at.int16() };
    }
    case FrontendMessageType.Execute:
      return { type: 'Execute', portal: at.cstring(), maxRows: at.int32() };
    case FrontendMessageType.Describe:
    case FrontendMessageType.Close:
      return { type: nameOf(FRONTEND_NAMES, type), what: at.byte() === 0x50 ? 'portal' : 'statement', name: at.cstring() };
    case FrontendMessageType.CopyFail:
      return { type: 'CopyFail', ...(options.includeQueries ? { message: text(at.cstring()) } : {}) };
    case FrontendMessageType.FunctionCall:
      return { type: 'FunctionCall', functionOid: at.int32() };
    default:
      return { type: nameOf(FRONTEND_NAMES, type) };
  }
}

/**
 * A StartupMessage's parameters as sent. None of them is a secret in the protocol; a client that
 * puts one in `options` (`-c password=...`) gets nothing from the server either way, and the
 * value is still not worth a log line, so a parameter named like one is redacted.
 */
export function describeStartupParameters(parameters: ReadonlyMap<string, string>): Record<string, string> {
  const described: Record<string, string> = {};
  for (const [name, value] of parameters) described[name] = SECRET_PARAMETER.test(name) || SECRET_PARAMETER.test(value) ? REDACTED : value;
  return described;
}

/** What the client's next `p` message will be, after an Authentication request of `code`. */
export function passwordResponseAfter(code: number, current: PasswordResponseKind | undefined): PasswordResponseKind | undefined {
  switch (code) {
    case AuthenticationCode.SASL:
      return PasswordResponseKind.SASLInitial;
    case AuthenticationCode.SASLContinue:
      return PasswordResponseKind.SASL;
    case AuthenticationCode.CleartextPassword:
    case AuthenticationCode.MD5Password:
      return PasswordResponseKind.Password;
    default:
      return current;
  }
}

const SECRET_PARAMETER = /pass|secret|token|key/i;

function describeAuthentication(at: Cursor): MessageDescription {
  const code = at.int32();
  const type = AUTHENTICATION_NAMES[code] ?? `Authentication(${code})`;
  if (code === AuthenticationCode.SASL) {
    const mechanisms: string[] = [];
    for (let name = at.cstring(); name !== '' && mechanisms.length < 16; name = at.cstring()) mechanisms.push(name);
    return { type, mechanisms };
  }
  // Server nonces and signatures, and MD5 salts: not a reader's business.
  if (code === AuthenticationCode.SASLContinue || code === AuthenticationCode.SASLFinal || code === AuthenticationCode.MD5Password) {
    return { type, data: REDACTED };
  }
  return { type };
}

function describePasswordResponse(at: Cursor, expected: PasswordResponseKind): MessageDescription {
  if (expected === PasswordResponseKind.SASLInitial) return { type: expected, mechanism: at.cstring(), data: REDACTED };
  if (expected === PasswordResponseKind.SASL) return { type: expected, data: REDACTED };
  return { type: expected, password: REDACTED };
}

/** Severity and SQLSTATE always; message, detail and hint may quote a user's values. */
function noticeFields(at: Cursor, options: DescribeOptions): Record<string, string> {
  const fields: Record<string, string> = {};
  for (let code = at.byte(); code !== 0; code = at.byte()) {
    const value = at.cstring();
    if (code === NoticeFieldCode.severity) fields.severity = value;
    else if (code === NoticeFieldCode.code) fields.code = value;
    else if (options.includeQueries && code === NoticeFieldCode.message) fields.message = text(value);
    else if (options.includeQueries && code === NoticeFieldCode.detail) fields.detail = text(value);
    else if (options.includeQueries && code === NoticeFieldCode.hint) fields.hint = text(value);
  }
  return fields;
}

function text(value: string): string {
  return value.length <= MAX_DESCRIBED_TEXT ? value : `${value.slice(0, MAX_DESCRIBED_TEXT)}…`;
}

function nameOf(names: ReadonlyMap<number, string>, type: number): string {
  return names.get(type) ?? `Unknown(0x${type.toString(16).padStart(2, '0')})`;
}

function invert(table: Readonly<Record<string, number>>): ReadonlyMap<number, string> {
  return new Map(Object.entries(table).map(([name, code]) => [code, name]));
}

/** Reads that stop at the end of what is there: past it, numbers read 0 and strings end. */
class Cursor {
  readonly #body: Buffer;
  #pos = 0;

  constructor(body: Buffer) {
    this.#body = body;
  }

  byte(): number {
    return this.#pos < this.#body.length ? (this.#body[this.#pos++] as number) : 0;
  }

  int16(): number {
    if (this.#pos + 2 > this.#body.length) return ((this.#pos = this.#body.length), 0);
    const value = this.#body.readInt16BE(this.#pos);
    this.#pos += 2;
    return value;
  }

  int32(): number {
    if (this.#pos + 4 > this.#body.length) return ((this.#pos = this.#body.length), 0);
    const value = this.#body.readInt32BE(this.#pos);
    this.#pos += 4;
    return value;
  }

  cstring(): string {
    const end = this.#body.indexOf(0, this.#pos);
    const stop = end === -1 ? this.#body.length : end;
    const value = this.#body.toString('utf8', this.#pos, stop);
    this.#pos = Math.min(this.#body.length, stop + 1);
    return value;
  }

  advance(bytes: number): void {
    this.#pos = Math.min(this.#body.length, this.#pos + Math.max(0, bytes));
  }
}
