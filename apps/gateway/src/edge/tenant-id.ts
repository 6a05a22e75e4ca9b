// Which tenant a client wants: the leftmost label of its TLS server name (`acme.db.example.com`),
// or, for clients that send no SNI (IP hosts, libpq before 14, sslsni=0), a `tenant` setting in
// the startup `options` parameter. The setting is removed from `options` here, because the
// backend would refuse it ("unrecognized configuration parameter") and because the tenant is
// the gateway's business, not the backend's.
// Map: docs/architecture.md, step 5.
import { bySpecificity, matchSuffix, normalizeServerName, normalizeSuffix } from './server-name.ts';
import { SqlState } from '@tenantgate/wire';
import { Refusal } from '../errors.ts';
import { TENANT_ID_PATTERN } from '@tenantgate/tenancy';

/** libs/tenancy's pattern: DNS label characters only, so an id is always usable as `<id>.db.example.com`. */
const TENANT_ID = new RegExp(TENANT_ID_PATTERN);

export const TenantIdOrigin = {
  ServerName: 'server_name',
  Options: 'options',
  /** Both named it, and they agree. */
  Both: 'both',
} as const;
export type TenantIdOrigin = (typeof TenantIdOrigin)[keyof typeof TenantIdOrigin];

export interface TenantIdentity {
  readonly tenantId: string;
  readonly origin: TenantIdOrigin;
  /** The startup parameters with the tenant setting removed (and `options` dropped when it is left empty). */
  readonly parameters: Map<string, string>;
}

/** One option of the `options` string: its text as sent, and its value with escapes undone. */
export interface OptionToken {
  readonly raw: string;
  readonly value: string;
}

export interface OptionsTenant {
  /** Lower case; undefined when `options` names no tenant. */
  readonly tenantId: string | undefined;
  /** `options` without the tenant setting; undefined when nothing is left. */
  readonly remaining: string | undefined;
}

export class TenantIdentifier {
  readonly #suffixes: readonly string[];
  readonly #example: string;

  /** @param suffixes GatewayConfig.sniSuffixes (`.db.example.com`); may be empty (options only). */
  constructor(suffixes: readonly string[]) {
    this.#suffixes = bySpecificity(suffixes);
    this.#example = suffixes.length > 0 ? `<tenant>${normalizeSuffix(suffixes[0])}` : '';
  }

  /** @throws Refusal (08004) when the tenant is missing, invalid or named twice differently. */
  identify(serverName: string | undefined, parameters: ReadonlyMap<string, string>): TenantIdentity {
    const fromName = this.fromServerName(serverName);
    const options = tenantFromOptions(parameters.get('options'));
    const tenantId = fromName ?? options.tenantId;
    if (tenantId === undefined) throw this.#missing(serverName);
    if (fromName !== undefined && options.tenantId !== undefined && fromName !== options.tenantId) {
      throw new Refusal(
        SqlState.ConnectionRejected,
        `the host name names tenant "${fromName}" but options name tenant "${options.tenantId}"`,
        {
          hint: 'Remove the tenant setting from options, or make it match the host name.',
        },
      );
    }
    return { tenantId, origin: originOf(fromName, options.tenantId), parameters: withOptions(parameters, options) };
  }

  /**
   * The tenant a server name names, or undefined when it is outside every suffix (a client
   * that connected by another name may still name its tenant in options).
   * @throws Refusal (08004) for a name under a suffix that is not `<tenant>.<suffix>`.
   */
  fromServerName(serverName: string | undefined): string | undefined {
    const name = normalizeServerName(serverName);
    const match = name === undefined ? undefined : matchSuffix(name, this.#suffixes);
    if (match === undefined) return undefined;
    if (TENANT_ID.test(match.prefix)) return match.prefix;
    throw new Refusal(SqlState.ConnectionRejected, `the host name ${quote(name ?? '')} does not name a tenant`, {
      detail: `Tenant host names have exactly one label before ${match.suffix}: ${ID_RULE}`,
      hint: `Connect to <tenant>${match.suffix}.`,
    });
  }

  #missing(serverName: string | undefined): Refusal {
    const viaOptions = 'options=-c tenant=<tenant> (in a URL: ?options=-c%20tenant%3D<tenant>)';
    const hint = this.#example === '' ? `Add ${viaOptions}.` : `Connect to ${this.#example}, or add ${viaOptions}.`;
    const name = normalizeServerName(serverName);
    const detail =
      name === undefined ? 'The client sent no TLS server name (SNI).' : `The host name ${quote(name)} is not a tenant host name.`;
    return new Refusal(SqlState.ConnectionRejected, 'no tenant in the connection', { detail, hint });
  }
}

const ID_RULE = 'a tenant id is 1 to 63 characters of a-z, 0-9 and -.';

/**
 * The tenant setting of a startup `options` string: `-c tenant=<id>`, `-ctenant=<id>`,
 * `--tenant=<id>` or a bare `tenant=<id>`. Other options are kept as sent (escapes included).
 * @throws Refusal (08004) for an invalid id, or two settings that disagree.
 */
export function tenantFromOptions(options: string | undefined): OptionsTenant {
  if (options === undefined) return { tenantId: undefined, remaining: undefined };
  const tokens = splitOptions(options);
  const { ids, removed } = findTenantSettings(tokens);
  if (ids.length === 0) return { tenantId: undefined, remaining: options === '' ? undefined : options };
  const tenantId = checkOptionIds(ids);
  const rest = tokens.filter((_, i) => !removed.has(i)).map((token) => token.raw);
  return { tenantId, remaining: rest.length === 0 ? undefined : rest.join(' ') };
}

/**
 * Splits `options` as the server does (pg_split_opts): options are separated by whitespace;
 * a backslash makes the next character literal (`a\ b` is one option, `a b`).
 * @see https://www.postgresql.org/docs/current/libpq-connect.html#LIBPQ-CONNECT-OPTIONS
 */
export function splitOptions(options: string): OptionToken[] {
  const tokens: OptionToken[] = [];
  let i = 0;
  while (i < options.length) {
    while (i < options.length && isSpace(options[i])) i++;
    if (i === options.length) break;
    const start = i;
    let value = '';
    let escaped = false;
    for (; i < options.length && (escaped || !isSpace(options[i])); i++) {
      escaped = !escaped && options[i] === '\\';
      if (!escaped) value += options[i];
    }
    tokens.push({ raw: options.slice(start, i), value });
  }
  return tokens;
}

/**
 * Switches of the postgres command line that take an argument (its getopt string
 * "B:bc:C:D:d:EeFf:h:ijk:lN:nOPp:r:S:sTt:v:W:-:"): the argument of `-d tenant=x` is not a setting.
 */
const SWITCHES_WITH_ARGUMENT = new Set('BcCDdfhkNprStvW');

/** Indexes of the tokens that make up tenant settings, and the ids they name. */
function findTenantSettings(tokens: readonly OptionToken[]): { ids: string[]; removed: Set<number> } {
  const ids: string[] = [];
  const removed = new Set<number>();
  for (let i = 0; i < tokens.length; i++) {
    const { value } = tokens[i];
    const separate = value.length === 2 && value[0] === '-' && SWITCHES_WITH_ARGUMENT.has(value[1]);
    const setting = separate ? (value === '-c' ? tokens[i + 1]?.value : undefined) : settingOf(value);
    const id = setting === undefined ? undefined : tenantValue(setting);
    if (id !== undefined) {
      ids.push(id);
      removed.add(i);
      if (separate) removed.add(i + 1);
    }
    if (separate) i++;
  }
  return { ids, removed };
}

/** The `name=value` a single token sets, if it is one: `-cname=value`, `--name=value`, `name=value`. */
function settingOf(token: string): string | undefined {
  if (token.startsWith('--')) return token.slice(2);
  if (token.startsWith('-c')) return token.slice(2);
  if (token.startsWith('-')) return undefined;
  return token;
}

/** The value of a `tenant` setting (names compare as GUC names do: case-insensitive, `-` as `_`). */
function tenantValue(setting: string): string | undefined {
  const equals = setting.indexOf('=');
  const name = (equals === -1 ? setting : setting.slice(0, equals)).toLowerCase().replaceAll('-', '_');
  if (name !== 'tenant') return undefined;
  return equals === -1 ? '' : setting.slice(equals + 1);
}

function checkOptionIds(ids: readonly string[]): string {
  const normalized = ids.map((id) => id.toLowerCase());
  const bad = normalized.find((id) => !TENANT_ID.test(id));
  if (bad !== undefined) {
    throw new Refusal(SqlState.ConnectionRejected, `invalid tenant id ${quote(bad)} in options`, {
      detail: ID_RULE[0].toUpperCase() + ID_RULE.slice(1),
    });
  }
  const distinct = [...new Set(normalized)];
  if (distinct.length > 1) {
    throw new Refusal(SqlState.ConnectionRejected, `options name more than one tenant (${distinct.map(quote).join(', ')})`);
  }
  return distinct[0];
}

function originOf(fromName: string | undefined, fromOptions: string | undefined): TenantIdOrigin {
  if (fromName === undefined) return TenantIdOrigin.Options;
  return fromOptions === undefined ? TenantIdOrigin.ServerName : TenantIdOrigin.Both;
}

function withOptions(parameters: ReadonlyMap<string, string>, options: OptionsTenant): Map<string, string> {
  const copy = new Map(parameters);
  if (!copy.has('options')) return copy;
  if (options.remaining === undefined) copy.delete('options');
  else copy.set('options', options.remaining);
  return copy;
}

/** C isspace() in the C locale, as pg_split_opts uses it. */
function isSpace(ch: string): boolean {
  return ch === ' ' || ch === '\t' || ch === '\n' || ch === '\r' || ch === '\v' || ch === '\f';
}

/** A client's text in a message: quoted, and cut short so a long value cannot bloat the error. */
function quote(text: string): string {
  const max = 70;
  return JSON.stringify(text.length > max ? `${text.slice(0, max - 3)}...` : text);
}
