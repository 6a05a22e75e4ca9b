// CIDR blocks of a tenant's allow-list, checked with node:net's BlockList.
import { BlockList, isIPv4, isIPv6 } from 'node:net';

export interface Cidr {
  address: string;
  prefix: number;
  family: 'ipv4' | 'ipv6';
}

export function parseCidr(text: string): Cidr | undefined {
  const slash = text.indexOf('/');
  if (slash <= 0) return undefined;
  const address = text.slice(0, slash);
  const prefixText = text.slice(slash + 1);
  if (!/^[0-9]{1,3}$/.test(prefixText)) return undefined;
  const prefix = Number(prefixText);
  if (isIPv4(address) && prefix <= 32) return { address, prefix, family: 'ipv4' };
  if (isIPv6(address) && prefix <= 128) return { address, prefix, family: 'ipv6' };
  return undefined;
}

/** A BlockList that answers "is this client address allowed?" for a list of CIDR blocks. */
export function cidrAllowList(cidrs: readonly string[]): BlockList {
  const list = new BlockList();
  for (const text of cidrs) {
    const cidr = parseCidr(text);
    if (cidr !== undefined) list.addSubnet(cidr.address, cidr.prefix, cidr.family);
  }
  return list;
}

const MAPPED_IPV4 = /^::ffff:(\d{1,3}(?:\.\d{1,3}){3})$/i;

/**
 * True when `address` (a socket's remoteAddress) falls in the list. IPv4 clients reaching a
 * dual-stack listener appear as IPv4-mapped IPv6 (`::ffff:10.0.0.1`): they are matched
 * against the IPv4 blocks, as a person writing `10.0.0.0/8` expects.
 */
export function isAddressAllowed(list: BlockList, address: string): boolean {
  const mapped = MAPPED_IPV4.exec(address);
  if (mapped !== null) return list.check(mapped[1] as string, 'ipv4');
  if (isIPv4(address)) return list.check(address, 'ipv4');
  if (isIPv6(address)) return list.check(address, 'ipv6');
  return false;
}

const LOCAL = new BlockList();
LOCAL.addSubnet('127.0.0.0', 8, 'ipv4'); // loopback
LOCAL.addSubnet('169.254.0.0', 16, 'ipv4'); // link-local, cloud metadata services among them
LOCAL.addSubnet('0.0.0.0', 8, 'ipv4'); // "this host"
LOCAL.addAddress('::1', 'ipv6');
LOCAL.addAddress('::', 'ipv6');
LOCAL.addSubnet('fe80::', 10, 'ipv6');

/**
 * Whether a backend host names this machine or its link: a loopback or link-local address, or
 * `localhost`. A tenant pointed there would reach the gateway's own host or a cloud metadata
 * service instead of a database. (A name that resolves there is not caught: DNS is not read.)
 */
export function isLocalHost(host: string): boolean {
  const name = host.toLowerCase().replace(/\.$/, '');
  if (name === 'localhost' || name.endsWith('.localhost')) return true;
  const address = name.startsWith('[') && name.endsWith(']') ? name.slice(1, -1) : name;
  if (!isIPv4(address) && !isIPv6(address)) return false;
  return isAddressAllowed(LOCAL, address);
}
