// Listen addresses as both apps take them (`host:port`, `[ipv6]:port`, `:port`), and what a
// failed listen means for the person who set the variable.
import { isIPv6 } from 'node:net';
import { describeSystemError } from './system-errors.ts';

export interface ListenAddress {
  readonly host: string;
  readonly port: number;
}

const LISTEN = /^(?:\[([^\]]+)\]|([A-Za-z0-9.-]*)):([0-9]{1,5})$/;

/** `host:port`, `[ipv6]:port`, or `:port` for every IPv4 interface; undefined for anything else. */
export function parseListenAddress(value: string): ListenAddress | undefined {
  const match = LISTEN.exec(value);
  if (match === null) return undefined;
  const [, ipv6, host, portText] = match;
  const port = Number(portText);
  if (port > 65535 || (ipv6 !== undefined && !isIPv6(ipv6))) return undefined;
  return { host: ipv6 ?? (host || '0.0.0.0'), port };
}

/** The address as the variable spells it: `127.0.0.1:6432`, `[::1]:6432`. */
export function formatListenAddress({ host, port }: ListenAddress): string {
  return isIPv6(host) ? `[${host}]:${port}` : `${host}:${port}`;
}

/**
 * What went wrong when listening on `address` failed (`127.0.0.1:6432 is already in use`), or
 * undefined when `error` is not a failed listen.
 */
export function describeListenFailure(error: unknown, address: ListenAddress): string | undefined {
  const { code, syscall } = (error ?? {}) as { code?: unknown; syscall?: unknown };
  if (syscall !== 'listen' && syscall !== 'bind') return undefined;
  const where = formatListenAddress(address);
  switch (code) {
    case 'EADDRINUSE':
      return `${where} is already in use`;
    case 'EADDRNOTAVAIL':
      return `${where} is not an address of this host`;
    default:
      return `cannot listen on ${where}: ${describeSystemError(error)}`;
  }
}
