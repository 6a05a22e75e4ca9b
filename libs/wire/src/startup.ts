// Startup-phase packets: the untyped packets a client sends first (SSLRequest, GSSENCRequest,
// CancelRequest, StartupMessage). Parsers take one whole packet (Int32 length included) as
// FrameDecoder hands it out in the startup phase.
// @see https://www.postgresql.org/docs/current/protocol-flow.html#PROTOCOL-FLOW-START-UP
// @see https://www.postgresql.org/docs/current/protocol-message-formats.html#PROTOCOL-MESSAGE-FORMATS-STARTUPMESSAGE
import { ProtocolError } from './errors.ts';
import { MAX_STARTUP_PACKET_LENGTH, MIN_STARTUP_PACKET_LENGTH } from './frame-decoder.ts';
import { MessageReader, PROTOCOL_MAJOR_VERSION, checkCancelKeyLength } from './messages.ts';
import { FrameWriter, cstringLength } from './serializer.ts';

/** Request codes that take the place of a protocol version (1234.5678 and on). */
export const StartupRequestCode = {
  CancelRequest: 80877102, // 1234.5678
  SSLRequest: 80877103, // 1234.5679
  GSSENCRequest: 80877104, // 1234.5680
} as const;
export type StartupRequestCode = (typeof StartupRequestCode)[keyof typeof StartupRequestCode];

/** Protocol versions as sent: major in the high 16 bits, minor in the low 16. */
export const ProtocolVersion = {
  V3_0: 196608, // 3.0
  V3_2: 196610, // 3.2 (PostgreSQL 18: variable-length cancel keys)
} as const;
export type ProtocolVersion = (typeof ProtocolVersion)[keyof typeof ProtocolVersion];

/** The newest minor version this library speaks; newer requests get NegotiateProtocolVersion. */
export const LATEST_MINOR_VERSION = 2;
/** Parameters with this prefix are protocol options, not run-time settings. */
export const PROTOCOL_OPTION_PREFIX = '_pq_.';

export type SSLRequest = { kind: 'SSLRequest' };
export type GSSENCRequest = { kind: 'GSSENCRequest' };
export type CancelRequest = { kind: 'CancelRequest'; processId: number; secretKey: Buffer };
export type StartupMessage = {
  kind: 'StartupMessage';
  /** As requested, which may be newer than {@link LATEST_MINOR_VERSION}. */
  minorVersion: number;
  /** Run-time parameters in the order sent; `user` is always present and not empty. */
  parameters: Map<string, string>;
  /** `_pq_.*` protocol options (full names) in the order sent. */
  protocolOptions: Map<string, string>;
};
export type StartupPacket = SSLRequest | GSSENCRequest | CancelRequest | StartupMessage;

/** Parses one startup-phase packet. Every malformation is a ProtocolError (08P01). */
export function parseStartupPacket(packet: Buffer): StartupPacket {
  checkPacketLength(packet);
  const code = packet.readUInt32BE(4);
  switch (code) {
    case StartupRequestCode.SSLRequest:
      checkExactLength(packet, 8, 'SSLRequest');
      return { kind: 'SSLRequest' };
    case StartupRequestCode.GSSENCRequest:
      checkExactLength(packet, 8, 'GSSENCRequest');
      return { kind: 'GSSENCRequest' };
    case StartupRequestCode.CancelRequest:
      return parseCancelRequest(packet);
    default:
      return parseStartupMessage(packet, code);
  }
}

function checkPacketLength(packet: Buffer): void {
  if (packet.length < MIN_STARTUP_PACKET_LENGTH || packet.length > MAX_STARTUP_PACKET_LENGTH) {
    throw new ProtocolError(`invalid length of startup packet (${packet.length} bytes)`);
  }
  if (packet.readInt32BE(0) !== packet.length) throw new ProtocolError('startup packet length does not match');
}

function checkExactLength(packet: Buffer, length: number, what: string): void {
  if (packet.length !== length) throw new ProtocolError(`${what}: invalid length ${packet.length}`);
}

/** The key is 4 bytes up to protocol 3.0 and 4..256 since 3.2; the packet does not say which. */
function parseCancelRequest(packet: Buffer): CancelRequest {
  const reader = new MessageReader(packet, 8, 'CancelRequest');
  const processId = reader.int32();
  // A copy: the key is kept for cancel routing, and a view would pin the whole chunk.
  const secretKey = Buffer.from(reader.rest());
  checkCancelKeyLength(secretKey.length, undefined, 'CancelRequest');
  return { kind: 'CancelRequest', processId, secretKey };
}

function parseStartupMessage(packet: Buffer, version: number): StartupMessage {
  const major = version >>> 16;
  const minorVersion = version & 0xffff;
  if (major !== PROTOCOL_MAJOR_VERSION) {
    throw new ProtocolError(`unsupported frontend protocol ${major}.${minorVersion}: server supports 3.0 to 3.2`);
  }
  const { parameters, protocolOptions } = readParameters(new MessageReader(packet, 8, 'StartupMessage'));
  if (!parameters.get('user')) throw new ProtocolError('no PostgreSQL user name specified in startup packet');
  return { kind: 'StartupMessage', minorVersion, parameters, protocolOptions };
}

/**
 * `name\0value\0` pairs, then a final `\0` that must be the last byte (PostgreSQL: "expected
 * terminator as last byte"). Names and values must be UTF-8, and no name may repeat: the
 * gateway looks parameters up by name, and a second `user` must not hide behind the first.
 */
function readParameters(reader: MessageReader): Pick<StartupMessage, 'parameters' | 'protocolOptions'> {
  const parameters = new Map<string, string>();
  const protocolOptions = new Map<string, string>();
  while (reader.peek() !== 0) {
    if (reader.remaining === 0) {
      throw new ProtocolError('invalid startup packet layout: expected terminator as last byte');
    }
    const name = reader.cstring(true);
    const value = reader.cstring(true);
    const target = name.startsWith(PROTOCOL_OPTION_PREFIX) ? protocolOptions : parameters;
    if (parameters.has(name) || protocolOptions.has(name)) {
      throw new ProtocolError(`startup parameter ${JSON.stringify(name)} appears twice`);
    }
    target.set(name, value);
  }
  reader.byte();
  reader.end();
  return { parameters, protocolOptions };
}

// ---------------------------------------------------------------------------------------------
// Serializers

function requestPacket(code: StartupRequestCode): Buffer {
  return FrameWriter.startup(4).int32(code).finish();
}

export function serializeSSLRequest(): Buffer {
  return requestPacket(StartupRequestCode.SSLRequest);
}

export function serializeGSSENCRequest(): Buffer {
  return requestPacket(StartupRequestCode.GSSENCRequest);
}

export function serializeCancelRequest(processId: number, secretKey: Uint8Array): Buffer {
  checkCancelKeyLength(secretKey.length, undefined, 'cannot encode CancelRequest');
  return FrameWriter.startup(8 + secretKey.length)
    .int32(StartupRequestCode.CancelRequest)
    .int32(processId)
    .bytes(secretKey)
    .finish();
}

export interface StartupMessageInit {
  /** Defaults to {@link LATEST_MINOR_VERSION}. */
  minorVersion?: number;
  /** Must hold a non-empty `user`; names must not start with `_pq_.`. */
  parameters: ReadonlyMap<string, string>;
  /** Names must start with `_pq_.`. */
  protocolOptions?: ReadonlyMap<string, string>;
}

/**
 * The bytes a StartupMessage of these parameters takes on the wire, its length field included:
 * what PostgreSQL holds to MAX_STARTUP_PACKET_LENGTH.
 */
export function startupPacketLength(
  parameters: ReadonlyMap<string, string>,
  protocolOptions: ReadonlyMap<string, string> = new Map(),
): number {
  return 4 + 4 + pairsLength(parameters, false) + pairsLength(protocolOptions, true) + 1;
}

/** Writes parameters, then protocol options, then the terminator. */
export function serializeStartupMessage(init: StartupMessageInit): Buffer {
  const minorVersion = init.minorVersion ?? LATEST_MINOR_VERSION;
  if (!Number.isInteger(minorVersion) || minorVersion < 0 || minorVersion > 0xffff) {
    throw new ProtocolError(`cannot encode StartupMessage: bad minor version ${minorVersion}`);
  }
  if (!init.parameters.get('user')) throw new ProtocolError('cannot encode StartupMessage: no user');
  const options = init.protocolOptions ?? new Map<string, string>();
  const packetLength = startupPacketLength(init.parameters, options);
  if (packetLength > MAX_STARTUP_PACKET_LENGTH) {
    throw new ProtocolError(`cannot encode StartupMessage: ${packetLength} bytes exceed ${MAX_STARTUP_PACKET_LENGTH}`);
  }
  const length = packetLength - 4;
  const writer = FrameWriter.startup(length).int32((PROTOCOL_MAJOR_VERSION << 16) | minorVersion);
  for (const [name, value] of init.parameters) writer.cstring(name).cstring(value);
  for (const [name, value] of options) writer.cstring(name).cstring(value);
  return writer.byte(0).finish();
}

function pairsLength(pairs: ReadonlyMap<string, string>, protocolOptions: boolean): number {
  let length = 0;
  for (const [name, value] of pairs) {
    if (name === '' || name.startsWith(PROTOCOL_OPTION_PREFIX) !== protocolOptions) {
      throw new ProtocolError(`cannot encode StartupMessage: misplaced parameter ${JSON.stringify(name)}`);
    }
    length += cstringLength(name, 'parameter name') + cstringLength(value, 'parameter value');
  }
  return length;
}

export function serializeStartupPacket(packet: StartupPacket): Buffer {
  switch (packet.kind) {
    case 'SSLRequest':
      return serializeSSLRequest();
    case 'GSSENCRequest':
      return serializeGSSENCRequest();
    case 'CancelRequest':
      return serializeCancelRequest(packet.processId, packet.secretKey);
    case 'StartupMessage':
      return serializeStartupMessage(packet);
  }
}

/**
 * What a StartupMessage's `replication` parameter asks for, read as PostgreSQL reads it:
 * `database` is a logical walsender, a true boolean a physical one, a false one (or none) an
 * ordinary session. Booleans are PostgreSQL's parse_bool: any case, unique prefixes of
 * true/false/yes/no, `on`/`off`, `1`/`0`.
 * @see https://www.postgresql.org/docs/current/protocol-replication.html
 */
export const ReplicationRequest = {
  None: 'none',
  Logical: 'logical',
  Physical: 'physical',
} as const;
export type ReplicationRequest = (typeof ReplicationRequest)[keyof typeof ReplicationRequest];

/** @returns undefined when the value is none of PostgreSQL's (PostgreSQL refuses it, 22023). */
export function replicationRequest(value: string | undefined): ReplicationRequest | undefined {
  if (value === undefined) return ReplicationRequest.None;
  if (value === 'database') return ReplicationRequest.Logical;
  const word = value.toLowerCase();
  if (word === 'on' || word === '1' || isPrefixOf(word, 'true') || isPrefixOf(word, 'yes')) return ReplicationRequest.Physical;
  if (word === '0' || (word.length >= 2 && isPrefixOf(word, 'off')) || isPrefixOf(word, 'false') || isPrefixOf(word, 'no')) {
    return ReplicationRequest.None;
  }
  return undefined;
}

function isPrefixOf(word: string, of: string): boolean {
  return word.length > 0 && of.startsWith(word);
}
