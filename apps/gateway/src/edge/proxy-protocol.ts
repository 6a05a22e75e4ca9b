// The PROXY protocol header a load balancer puts before the client's first byte, so that a
// gateway behind it learns the client's address. Version 2 (binary) is what the NLB sends;
// version 1 (one line of text) is read too, as the spec recommends for v2 receivers, because
// other TCP proxies (HAProxy `send-proxy`, older ELBs) send it. The header is small and whole
// in practice, so a partial one is just parsed again with more bytes, never kept half-decoded.
// @see https://www.haproxy.org/download/2.9/doc/proxy-protocol.txt
// Map: docs/architecture.md, step 1.
import { SocketAddress, type Socket } from 'node:net';
import { ProxyHeaderError, ProxyHeaderFailure } from '../errors.ts';

/** Bytes 1..12 of every v2 header: chosen so that no common protocol starts with them (spec 2.2). */
export const PROXY_V2_SIGNATURE = Buffer.from([0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a]);
/** A v1 line starts with `PROXY` and one space. */
const V1_PREFIX = Buffer.from('PROXY ', 'latin1');
/** Signature, version/command, family/transport, 16-bit length. */
const V2_FIXED_LENGTH = 16;
const V2_VERSION = 0x2;
/** The longest v1 line, CRLF included (spec 2.1: `PROXY UNKNOWN` with two full IPv6 addresses). */
export const MAX_V1_HEADER_LENGTH = 107;
/**
 * Our cap on a v2 header: the 536 bytes the spec designs both formats to fit in (one minimum
 * TCP segment). That leaves 304 bytes of TLVs after IPv6 addresses, ample for the NLB's VPC
 * endpoint TLV; a longer declared length is refused before anything is buffered.
 */
export const MAX_V2_HEADER_LENGTH = 536;

/** The low nibble of byte 13. */
export const ProxyCommand = {
  /** The proxy's own connection (a health check): the socket's endpoints are the real ones. */
  Local: 0x0,
  /** Relayed for a client: the header carries its endpoints. */
  Proxy: 0x1,
} as const;

/** The high nibble of byte 14, with the bytes each address block takes (source + destination + ports). */
const FAMILIES = {
  0x0: { family: 'unspec', addressBlock: 0 },
  0x1: { family: 'ipv4', addressBlock: 2 * 4 + 2 * 2 },
  0x2: { family: 'ipv6', addressBlock: 2 * 16 + 2 * 2 },
  0x3: { family: 'unix', addressBlock: 2 * 108 },
} as const;
type FamilyCode = keyof typeof FAMILIES;

/** The low nibble of byte 14. */
const TRANSPORTS = { 0x0: 'unspec', 0x1: 'stream', 0x2: 'dgram' } as const;
type TransportCode = keyof typeof TRANSPORTS;

export type ProxyFamily = 'ipv4' | 'ipv6' | 'unix';
export type ProxyTransport = 'stream' | 'dgram';

export interface Endpoint {
  /** IPv4 dotted (IPv4-mapped IPv6 included), IPv6 in its canonical text, or a UNIX socket path. */
  readonly address: string;
  /** 0 for UNIX sockets. */
  readonly port: number;
}

/** A relayed connection: the client's endpoints as the proxy saw them. */
export interface ProxiedHeader {
  readonly kind: 'proxy';
  readonly version: 1 | 2;
  readonly family: ProxyFamily;
  readonly transport: ProxyTransport;
  readonly source: Endpoint;
  readonly destination: Endpoint;
  /** Bytes the header took; the client's own bytes start here. */
  readonly length: number;
}

/**
 * No client address to take: the proxy's own connection (v2 LOCAL, a health check), or a relayed
 * one it could not describe (v2 UNSPEC, v1 UNKNOWN). Either way the socket's endpoints stand.
 */
export interface AddresslessHeader {
  readonly kind: 'local' | 'unknown';
  readonly version: 1 | 2;
  readonly length: number;
}

export type ProxyHeader = ProxiedHeader | AddresslessHeader;

export type ProxyParseResult =
  | ProxyHeader
  /** A prefix of a header: call again with more bytes. */
  | { readonly kind: 'incomplete' }
  /** The bytes do not start like a PROXY header (a client talking to us directly). */
  | { readonly kind: 'absent' };

const INCOMPLETE = { kind: 'incomplete' } as const;
const ABSENT = { kind: 'absent' } as const;

function malformed(message: string): ProxyHeaderError {
  return new ProxyHeaderError(ProxyHeaderFailure.Malformed, message);
}

/**
 * Reads a PROXY header (v1 or v2) at the start of `bytes`. Looks at no byte past the header's
 * own length, so whatever follows is left to the caller as it is.
 * @throws ProxyHeaderError (malformed) for a header that breaks the spec; nothing else.
 */
export function parseProxyHeader(bytes: Buffer): ProxyParseResult {
  if (bytes.length === 0) return INCOMPLETE;
  if (startsLike(bytes, PROXY_V2_SIGNATURE)) return bytes.length < PROXY_V2_SIGNATURE.length ? INCOMPLETE : parseV2(bytes);
  if (startsLike(bytes, V1_PREFIX)) return bytes.length < V1_PREFIX.length ? INCOMPLETE : parseV1(bytes);
  return ABSENT;
}

/** True when `bytes` and `prefix` agree on their common length. */
function startsLike(bytes: Buffer, prefix: Buffer): boolean {
  const n = Math.min(bytes.length, prefix.length);
  return bytes.compare(prefix, 0, n, 0, n) === 0;
}

// ---------------------------------------------------------------------------------------------
// Version 2

/** `bytes` holds the whole signature. */
function parseV2(bytes: Buffer): ProxyParseResult {
  // Bytes 13 and 14 are checked as soon as they arrive: a bad one need not wait for the rest.
  if (bytes.length === 12) return INCOMPLETE;
  checkVersionAndCommand(bytes[12]);
  const command = bytes[12] & 0x0f;
  if (bytes.length === 13) return INCOMPLETE;
  if (command === ProxyCommand.Proxy) checkFamily(bytes[13]);
  if (bytes.length < V2_FIXED_LENGTH) return INCOMPLETE;
  const length = V2_FIXED_LENGTH + bytes.readUInt16BE(14);
  if (length > MAX_V2_HEADER_LENGTH) throw malformed(`PROXY v2 header of ${length} bytes, above the limit of ${MAX_V2_HEADER_LENGTH}`);
  if (bytes.length < length) return INCOMPLETE;
  // LOCAL: the spec says to skip the whole block, family and addresses included, unread.
  if (command === ProxyCommand.Local) return { kind: 'local', version: 2, length };
  // From here on only the header's own bytes are in reach.
  return parseV2Addresses(bytes.subarray(0, length));
}

function checkVersionAndCommand(byte: number): void {
  if (byte >> 4 !== V2_VERSION) throw malformed(`PROXY v2 signature with version ${byte >> 4}`);
  const command = byte & 0x0f;
  if (command !== ProxyCommand.Local && command !== ProxyCommand.Proxy)
    throw malformed(`PROXY v2 command 0x${command.toString(16)} is not LOCAL or PROXY`);
}

function checkFamily(byte: number): void {
  if (!(byte >> 4 in FAMILIES)) throw malformed(`PROXY v2 address family 0x${(byte >> 4).toString(16)} is not defined`);
  if (!((byte & 0x0f) in TRANSPORTS)) throw malformed(`PROXY v2 transport 0x${(byte & 0x0f).toString(16)} is not defined`);
}

/** A PROXY command: the address block, then TLVs up to the declared end. */
function parseV2Addresses(header: Buffer): ProxyParseResult {
  const length = header.length;
  const { family, addressBlock } = FAMILIES[(header[13] >> 4) as FamilyCode];
  const transport = TRANSPORTS[(header[13] & 0x0f) as TransportCode];
  // UNSPEC: the spec lets the receiver use the real endpoints and ignore the address bytes,
  // whose format (and so where TLVs would start) it does not define.
  if (family === 'unspec' || transport === 'unspec') return { kind: 'unknown', version: 2, length };
  if (length - V2_FIXED_LENGTH < addressBlock) {
    throw malformed(`PROXY v2 ${family} addresses need ${addressBlock} bytes, the header declares ${length - V2_FIXED_LENGTH}`);
  }
  checkTlvs(header, V2_FIXED_LENGTH + addressBlock);
  const addresses = header.subarray(V2_FIXED_LENGTH, V2_FIXED_LENGTH + addressBlock);
  const [source, destination] = family === 'unix' ? unixEndpoints(addresses) : ipEndpoints(addresses, family === 'ipv4' ? 4 : 16);
  return { kind: 'proxy', version: 2, family, transport, source, destination, length };
}

/**
 * TLVs (type, 16-bit length, value) are not used, but each must end inside the header: a length
 * that does not add up means the header is not what it claims to be.
 */
function checkTlvs(header: Buffer, offset: number): void {
  let at = offset;
  while (at < header.length) {
    if (header.length - at < 3) throw malformed('PROXY v2 TLV cut short: fewer than 3 bytes left for its type and length');
    const end = at + 3 + header.readUInt16BE(at + 1);
    if (end > header.length) throw malformed(`PROXY v2 TLV 0x${header[at].toString(16)} runs ${end - header.length} bytes past the header`);
    at = end;
  }
}

/** Source address, destination address, source port, destination port, in network order. */
function ipEndpoints(block: Buffer, size: 4 | 16): [Endpoint, Endpoint] {
  const format = size === 4 ? formatIPv4 : formatIPv6;
  const ports = 2 * size;
  return [
    { address: format(block.subarray(0, size)), port: block.readUInt16BE(ports) },
    { address: format(block.subarray(size, 2 * size)), port: block.readUInt16BE(ports + 2) },
  ];
}

/** Two 108-byte `sun_path` fields, each NUL-terminated unless full. */
function unixEndpoints(block: Buffer): [Endpoint, Endpoint] {
  const path = (field: Buffer) => {
    const end = field.indexOf(0);
    return field.toString('utf8', 0, end === -1 ? field.length : end);
  };
  return [
    { address: path(block.subarray(0, 108)), port: 0 },
    { address: path(block.subarray(108, 216)), port: 0 },
  ];
}

function formatIPv4(b: Buffer): string {
  return `${b[0]}.${b[1]}.${b[2]}.${b[3]}`;
}

function formatIPv6(b: Buffer): string {
  const groups: string[] = [];
  for (let i = 0; i < 16; i += 2) groups.push(b.readUInt16BE(i).toString(16));
  return canonicalIPv6(groups.join(':'));
}

// ---------------------------------------------------------------------------------------------
// Version 1

const V1_IPV4 = /^(?:0|[1-9][0-9]{0,2})(?:\.(?:0|[1-9][0-9]{0,2})){3}$/;
const V1_PORT = /^(?:0|[1-9][0-9]{0,4})$/;
/** Hex groups, colons and (for an embedded IPv4 tail) dots: no zone (`%eth0`), no brackets. */
const V1_IPV6_CHARS = /^[0-9A-Fa-f:.]+$/;
const CR = 0x0d;
const LF = 0x0a;

/** `PROXY TCP4|TCP6 <src> <dst> <srcport> <dstport>\r\n`, or `PROXY UNKNOWN ...\r\n`. */
function parseV1(bytes: Buffer): ProxyParseResult {
  const end = findLineEnd(bytes);
  if (end === undefined) return INCOMPLETE;
  const fields = bytes.toString('latin1', 0, end).split(' ');
  // UNKNOWN: "the receiver must ignore anything presented before the CRLF".
  if (fields[1] === 'UNKNOWN') return { kind: 'unknown', version: 1, length: end + 2 };
  if (fields[1] !== 'TCP4' && fields[1] !== 'TCP6') throw malformed(`PROXY v1 protocol "${fields[1]}" is not TCP4, TCP6 or UNKNOWN`);
  if (fields.length !== 6) throw malformed(`PROXY v1 line with ${fields.length} fields instead of 6`);
  const family = fields[1] === 'TCP4' ? 'ipv4' : 'ipv6';
  const source = { address: v1Address(fields[2], family), port: v1Port(fields[4]) };
  const destination = { address: v1Address(fields[3], family), port: v1Port(fields[5]) };
  return { kind: 'proxy', version: 1, family, transport: 'stream', source, destination, length: end + 2 };
}

/**
 * The index of the CR of the closing CRLF; undefined while it may still come. Only printable
 * ASCII may come before it: a lone CR or LF ends nothing (spec 2.1), it breaks the line.
 */
function findLineEnd(bytes: Buffer): number | undefined {
  const limit = Math.min(bytes.length, MAX_V1_HEADER_LENGTH);
  for (let i = V1_PREFIX.length; i < limit; i++) {
    const byte = bytes[i];
    if (byte === CR) {
      if (i + 1 >= MAX_V1_HEADER_LENGTH) break;
      if (i + 1 === bytes.length) return undefined;
      if (bytes[i + 1] === LF) return i;
      throw malformed('PROXY v1 line has a CR without LF');
    }
    if (byte < 0x20 || byte > 0x7e) throw malformed(`PROXY v1 line has byte 0x${byte.toString(16)}`);
  }
  if (bytes.length < MAX_V1_HEADER_LENGTH) return undefined;
  throw malformed(`PROXY v1 line without CRLF in its first ${MAX_V1_HEADER_LENGTH} bytes`);
}

function v1Address(text: string, family: 'ipv4' | 'ipv6'): string {
  if (family === 'ipv4') {
    if (V1_IPV4.test(text) && text.split('.').every((octet) => Number(octet) <= 255)) return text;
  } else if (V1_IPV6_CHARS.test(text)) {
    const canonical = tryCanonicalIPv6(text);
    if (canonical !== undefined) return canonical;
  }
  throw malformed(`PROXY v1 ${family === 'ipv4' ? 'TCP4' : 'TCP6'} address "${text}" is not valid`);
}

function v1Port(text: string): number {
  const port = Number(text);
  if (!V1_PORT.test(text) || port > 65535) throw malformed(`PROXY v1 port "${text}" is not valid`);
  return port;
}

// ---------------------------------------------------------------------------------------------
// Addresses

const MAPPED_IPV4 = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/;

/**
 * One text per address, as the kernel would print it (inet_ntop: lower case, longest zero run
 * compressed), and an IPv4-mapped address as plain IPv4: CIDR checks, cancel rate limits and
 * logs then see one client as one string, however the proxy wrote it.
 */
function canonicalIPv6(text: string): string {
  const canonical = new SocketAddress({ address: text, family: 'ipv6' }).address;
  return MAPPED_IPV4.exec(canonical)?.[1] ?? canonical;
}

/** A socket's remoteAddress as the client's address: an IPv4 client on a dual-stack listener as plain IPv4. */
export function clientAddressOf(remoteAddress: string): string {
  return MAPPED_IPV4.exec(remoteAddress)?.[1] ?? remoteAddress;
}

function tryCanonicalIPv6(text: string): string | undefined {
  try {
    return canonicalIPv6(text);
  } catch {
    // SocketAddress rejects what inet_pton rejects: the text is not an IPv6 address.
    return undefined;
  }
}

// ---------------------------------------------------------------------------------------------
// On a socket

/** `required`: every connection must start with a header; `optional`: one that does not is served as it is. */
export type ProxyHeaderMode = 'optional' | 'required';

export interface ReadProxyHeaderOptions {
  readonly mode: ProxyHeaderMode;
  /** From the call until the header is complete. */
  readonly timeoutMs: number;
}

/**
 * Reads the PROXY header at the start of a freshly accepted socket. Resolves with the header,
 * or undefined when mode `optional` found none. Then the socket is paused with every byte after
 * the header pushed back into it, unread: the next reader attaches its listener and resumes it.
 * Rejects with a ProxyHeaderError after destroying the socket without a word: the peer is a
 * load balancer, or someone who skipped it, and neither should get a Postgres or HTTP reply.
 */
export function readProxyHeader(socket: Socket, options: ReadProxyHeaderOptions): Promise<ProxyHeader | undefined> {
  return new Promise((resolve, reject) => {
    let buffered: Buffer | undefined;
    const stop = () => {
      clearTimeout(timer);
      socket.off('data', onData);
      socket.off('error', onError);
      socket.off('close', onClose);
    };
    const fail = (error: Error) => {
      stop();
      socket.destroy();
      reject(error);
    };
    const handBack = (rest: Buffer, header: ProxyHeader | undefined) => {
      stop();
      // Paused first: bytes unshifted into a flowing socket would be emitted to no listener.
      socket.pause();
      if (rest.length > 0) socket.unshift(rest);
      resolve(header);
    };
    const onData = (chunk: Buffer) => {
      const bytes = buffered === undefined ? chunk : Buffer.concat([buffered, chunk]);
      let result: ProxyParseResult;
      try {
        result = parseProxyHeader(bytes);
      } catch (error) {
        return fail(error as Error);
      }
      switch (result.kind) {
        case 'incomplete':
          // A copy: at most one header's worth, and it must not pin the socket's read buffer.
          buffered = Buffer.from(bytes);
          return;
        case 'absent':
          if (options.mode === 'required')
            return fail(new ProxyHeaderError(ProxyHeaderFailure.Missing, 'the connection did not start with a PROXY protocol header'));
          return handBack(bytes, undefined);
        default:
          return handBack(bytes.subarray(result.length), result);
      }
    };
    const onError = (error: Error) =>
      fail(new ProxyHeaderError(ProxyHeaderFailure.Closed, `socket error before the PROXY header: ${error.message}`, { cause: error }));
    const onClose = () => fail(new ProxyHeaderError(ProxyHeaderFailure.Closed, 'the peer closed the connection before its PROXY header'));
    const timer = setTimeout(
      () => fail(new ProxyHeaderError(ProxyHeaderFailure.Timeout, `no PROXY header within ${options.timeoutMs} ms`)),
      options.timeoutMs,
    );
    timer.unref();
    socket.on('data', onData);
    socket.on('error', onError);
    socket.on('close', onClose);
    if (socket.destroyed) onClose();
  });
}
