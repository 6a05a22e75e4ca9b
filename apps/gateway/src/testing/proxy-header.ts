// PROXY protocol headers as a load balancer writes them, for tests. Imported by tests only.
// @see https://www.haproxy.org/download/2.9/doc/proxy-protocol.txt
import { isIPv4 } from 'node:net';
import { PROXY_V2_SIGNATURE } from '../edge/index.ts';

export interface TestEndpoint {
  readonly address: string;
  readonly port: number;
}

/** One TLV: type, 16-bit length, value. */
export function tlv(type: number, value: Buffer): Buffer {
  const head = Buffer.alloc(3);
  head[0] = type;
  head.writeUInt16BE(value.length, 1);
  return Buffer.concat([head, value]);
}

/** A v2 header from its raw parts: version/command byte, family/transport byte, and what follows the length. */
export function rawV2(versionCommand: number, familyTransport: number, body: Buffer = Buffer.alloc(0)): Buffer {
  const fixed = Buffer.alloc(4);
  fixed[0] = versionCommand;
  fixed[1] = familyTransport;
  fixed.writeUInt16BE(body.length, 2);
  return Buffer.concat([PROXY_V2_SIGNATURE, fixed, body]);
}

/** A v2 PROXY header over TCP: IPv4 when both addresses are IPv4, IPv6 otherwise. */
export function proxyV2(source: TestEndpoint, destination: TestEndpoint, tlvs: readonly Buffer[] = []): Buffer {
  const v4 = isIPv4(source.address) && isIPv4(destination.address);
  const toBytes = v4 ? ipv4Bytes : ipv6Bytes;
  const ports = Buffer.alloc(4);
  ports.writeUInt16BE(source.port, 0);
  ports.writeUInt16BE(destination.port, 2);
  const body = Buffer.concat([toBytes(source.address), toBytes(destination.address), ports, ...tlvs]);
  return rawV2(0x21, v4 ? 0x11 : 0x21, body);
}

/** A v2 LOCAL header, as a load balancer's own health check sends. */
export function localV2(): Buffer {
  return rawV2(0x20, 0x00);
}

/** A v1 line: `PROXY TCP4|TCP6 src dst sport dport\r\n`. */
export function proxyV1(source: TestEndpoint, destination: TestEndpoint): Buffer {
  const protocol = isIPv4(source.address) ? 'TCP4' : 'TCP6';
  return Buffer.from(`PROXY ${protocol} ${source.address} ${destination.address} ${source.port} ${destination.port}\r\n`, 'latin1');
}

export function ipv4Bytes(address: string): Buffer {
  return Buffer.from(address.split('.').map(Number));
}

/** Hex groups with at most one `::`, and an optional IPv4 tail (`::ffff:1.2.3.4`): enough for tests. */
export function ipv6Bytes(address: string): Buffer {
  const v4Tail = /(\d+)\.(\d+)\.(\d+)\.(\d+)$/.exec(address);
  if (v4Tail !== null) {
    const [a, b, c, d] = v4Tail.slice(1).map(Number);
    return ipv6Bytes(`${address.slice(0, v4Tail.index)}${((a << 8) | b).toString(16)}:${((c << 8) | d).toString(16)}`);
  }
  const [head, tail] = address.includes('::') ? address.split('::') : [address, undefined];
  const groups = (text: string | undefined) => (text === undefined || text === '' ? [] : text.split(':'));
  const left = groups(head);
  const right = groups(tail);
  const all = tail === undefined ? left : [...left, ...Array<string>(8 - left.length - right.length).fill('0'), ...right];
  const bytes = Buffer.alloc(16);
  all.forEach((group, i) => bytes.writeUInt16BE(parseInt(group, 16), 2 * i));
  return bytes;
}
