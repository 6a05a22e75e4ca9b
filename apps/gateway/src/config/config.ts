// Turns the environment into a GatewayConfig of parsed values. env-schema (JSON schema, through
// Ajv) checks types, ranges and enums and applies defaults; the checks below cover what a schema
// cannot say: addresses, PEM-or-path values, lists that must pair up, variables that go together.
// No file is read here, so start-up errors are about variables, and this stays unit-testable.
// Map: docs/architecture.md, "Inside the gateway".
import { availableParallelism } from 'node:os';
import envSchema from 'env-schema';
import {
  badTokenIndex,
  parseListenAddress,
  PEM_BEGIN,
  pemSource,
  variablesSchema,
  type ListenAddress,
  type LogLevel,
  type PemKind,
  type PemSource,
} from '@tenantgate/runtime';
import { parseCidr } from '@tenantgate/tenancy';
import { CONFIG_VARIABLES, type ConfigVariable, type PROXY_PROTOCOL_MODES, type TLS_MIN_VERSIONS, type VariableName } from './variables.ts';
import { createSecureContext } from 'node:tls';

export { CONFIG_VARIABLES, helpText, type ConfigVariable, type VariableName } from './variables.ts';
export { parseListenAddress, type ListenAddress, type LogLevel, type PemSource } from '@tenantgate/runtime';

export type ProxyProtocolMode = (typeof PROXY_PROTOCOL_MODES)[number];

/** One server certificate and the SNI suffixes it serves. */
export interface TlsCertificate {
  readonly suffixes: readonly string[];
  readonly cert: PemSource;
  readonly key: PemSource;
}

export interface TlsConfig {
  /** In GATEWAY_TLS_CERT order; the first one also answers clients that send no SNI. */
  readonly certificates: readonly TlsCertificate[];
}

/** The client leg's TLS policy (GATEWAY_TLS_MIN_VERSION, GATEWAY_TLS_CIPHERS). */
export interface TlsPolicy {
  readonly minVersion: TlsMinVersion;
  /** An OpenSSL cipher list; absent: Node's defaults. */
  readonly ciphers: string | undefined;
}

export type TlsMinVersion = (typeof TLS_MIN_VERSIONS)[number];

export type TenantDirectoryConfig =
  { readonly kind: 'file'; readonly path: string } | { readonly kind: 'control-plane'; readonly url: string; readonly token: string };

/** Defaults for the backend leg; a tenant's own CA and client certificate override them. */
export interface BackendTlsSources {
  readonly ca: PemSource | undefined;
  readonly client: { readonly cert: PemSource; readonly key: PemSource } | undefined;
  /** GATEWAY_BACKEND_TLS_MIN_VERSION: a tenant's backend.tls.minVersion overrides it. */
  readonly minVersion: TlsMinVersion;
}

export interface GatewayConfig {
  readonly listen: ListenAddress;
  readonly workers: number;
  /** Absent only when allowPlaintext is set and no certificate was given. */
  readonly tls: TlsConfig | undefined;
  readonly tlsPolicy: TlsPolicy;
  readonly allowPlaintext: boolean;
  /** Lower case, each with one leading dot: `.db.example.com`. */
  readonly sniSuffixes: readonly string[];
  readonly tenantSource: TenantDirectoryConfig;
  readonly redisUrl: string | undefined;
  readonly backend: BackendTlsSources;
  readonly secretsDir: string | undefined;
  readonly proxyProtocol: ProxyProtocolMode;
  /** The peers whose PROXY header is read; undefined: every peer's. */
  readonly proxyTrustedCidrs: readonly string[] | undefined;
  /** Bearer tokens of the admin port's session endpoints; empty: those are closed. */
  readonly adminTokens: readonly string[];
  /** Absent: the admin server is disabled. */
  readonly adminListen: ListenAddress | undefined;
  readonly drainSeconds: number;
  readonly handshakeTimeoutMs: number;
  readonly authTimeoutMs: number;
  /** Holding an authenticated client of a sleeping tenant while it wakes; then 57P03. */
  readonly wakeTimeoutMs: number;
  readonly backendConnectTimeoutMs: number;
  readonly maxPendingConnections: number;
  readonly maxPendingPerAddress: number;
  /** 0: no per-address connect rate. */
  readonly connectsPerSecondPerAddress: number;
  /** With Redis: how long a session's lease on its tenant's connection cap outlives its last renewal. */
  readonly fleetLeaseMs: number;
  readonly logLevel: LogLevel;
}

export interface ConfigIssue {
  /** The variable (or variables, comma-separated) the line is about. */
  readonly variable: string;
  /** What was expected and, unless the value may be a secret, what was given. */
  readonly message: string;
}

/** Start-up must stop: the message has one line per bad variable. */
export class ConfigError extends Error {
  readonly code = 'TG_ERR_CONFIG';
  readonly issues: readonly ConfigIssue[];
  constructor(issues: readonly ConfigIssue[]) {
    super(issues.map((i) => `${i.variable}: ${i.message}`).join('\n'));
    this.name = 'ConfigError';
    this.issues = issues;
  }
}

/**
 * The values after env-schema: coerced and with defaults; absent means unset. Its keys must be
 * exactly CONFIG_VARIABLES' names, or the type collapses to a `mismatch` naming the difference.
 */
type SchemaValues = KeyedByTable<{
  GATEWAY_LISTEN: string;
  GATEWAY_WORKERS: string;
  GATEWAY_TLS_CERT?: string;
  GATEWAY_TLS_KEY?: string;
  GATEWAY_SNI_SUFFIXES?: string;
  GATEWAY_TLS_MIN_VERSION: TlsMinVersion;
  GATEWAY_TLS_CIPHERS?: string;
  GATEWAY_ALLOW_PLAINTEXT: boolean;
  GATEWAY_TENANTS_FILE?: string;
  GATEWAY_CONTROL_PLANE_URL?: string;
  GATEWAY_CONTROL_PLANE_TOKEN?: string;
  REDIS_URL?: string;
  GATEWAY_BACKEND_CA?: string;
  GATEWAY_BACKEND_CLIENT_CERT?: string;
  GATEWAY_BACKEND_CLIENT_KEY?: string;
  GATEWAY_BACKEND_TLS_MIN_VERSION: TlsMinVersion;
  GATEWAY_SECRETS_DIR?: string;
  GATEWAY_PROXY_PROTOCOL: ProxyProtocolMode;
  GATEWAY_PROXY_TRUSTED_CIDRS?: string;
  GATEWAY_ADMIN_TOKENS?: string[];
  GATEWAY_ADMIN_LISTEN: string;
  GATEWAY_DRAIN_SECONDS: number;
  GATEWAY_HANDSHAKE_TIMEOUT_MS: number;
  GATEWAY_AUTH_TIMEOUT_MS: number;
  GATEWAY_WAKE_TIMEOUT_MS: number;
  GATEWAY_BACKEND_CONNECT_TIMEOUT_MS: number;
  GATEWAY_MAX_PENDING_CONNECTIONS: number;
  GATEWAY_MAX_PENDING_PER_ADDRESS: number;
  GATEWAY_CONNECTS_PER_SECOND_PER_ADDRESS: number;
  GATEWAY_FLEET_LEASE_MS: number;
  LOG_LEVEL: LogLevel;
}>;
type KeyedByTable<T> = [Exclude<VariableName, keyof T>, Exclude<keyof T, VariableName>] extends [never, never]
  ? T
  : { mismatch: [missing: Exclude<VariableName, keyof T>, unknown: Exclude<keyof T, VariableName>] };

const VARIABLES = new Map<string, ConfigVariable>(CONFIG_VARIABLES.map((v) => [v.name, v]));
const SCHEMA = { ...variablesSchema(CONFIG_VARIABLES), additionalProperties: false };

/**
 * Reads and checks the gateway's variables.
 * @throws ConfigError with one line per bad variable.
 */
export function loadConfig(env: NodeJS.ProcessEnv): GatewayConfig {
  const issues = new Issues();
  const values = validateSchema(readVariables(env, issues), issues);
  const tlsWanted = values.GATEWAY_TLS_CERT !== undefined || values.GATEWAY_TLS_KEY !== undefined;
  const sniSuffixes = parseSuffixes(values.GATEWAY_SNI_SUFFIXES, tlsWanted, issues);
  const listen = parseListenVariable('GATEWAY_LISTEN', values.GATEWAY_LISTEN, issues);
  const tls = parseTls(values, sniSuffixes, issues);
  const tenantSource = parseTenantDirectory(values, issues);
  const redisUrl = parseUrl('REDIS_URL', values.REDIS_URL, ['redis:', 'rediss:'], issues);
  const backend = parseBackend(values, issues);
  const adminListen = parseAdminListen(values.GATEWAY_ADMIN_LISTEN, issues);
  const adminTokens = parseAdminTokens(values.GATEWAY_ADMIN_TOKENS, issues);
  const proxyTrustedCidrs = parseTrustedCidrs(values.GATEWAY_PROXY_TRUSTED_CIDRS, values.GATEWAY_PROXY_PROTOCOL, issues);
  const tlsPolicy = { minVersion: values.GATEWAY_TLS_MIN_VERSION, ciphers: parseCiphers(values.GATEWAY_TLS_CIPHERS, issues) };
  if (!tlsWanted && !values.GATEWAY_ALLOW_PLAINTEXT && !issues.has('GATEWAY_ALLOW_PLAINTEXT')) {
    issues.missing('GATEWAY_TLS_CERT', 'server certificates (paths or PEM), required unless GATEWAY_ALLOW_PLAINTEXT=true');
  }
  if (listen === undefined || tenantSource === undefined || issues.size > 0) throw new ConfigError(issues.sorted());
  return {
    listen,
    workers: values.GATEWAY_WORKERS === 'auto' ? availableParallelism() : Number(values.GATEWAY_WORKERS),
    tls,
    tlsPolicy,
    allowPlaintext: values.GATEWAY_ALLOW_PLAINTEXT,
    sniSuffixes: sniSuffixes ?? [],
    tenantSource,
    redisUrl,
    backend,
    secretsDir: values.GATEWAY_SECRETS_DIR,
    proxyProtocol: values.GATEWAY_PROXY_PROTOCOL,
    proxyTrustedCidrs,
    adminTokens,
    adminListen,
    drainSeconds: values.GATEWAY_DRAIN_SECONDS,
    handshakeTimeoutMs: values.GATEWAY_HANDSHAKE_TIMEOUT_MS,
    authTimeoutMs: values.GATEWAY_AUTH_TIMEOUT_MS,
    wakeTimeoutMs: values.GATEWAY_WAKE_TIMEOUT_MS,
    backendConnectTimeoutMs: values.GATEWAY_BACKEND_CONNECT_TIMEOUT_MS,
    maxPendingConnections: values.GATEWAY_MAX_PENDING_CONNECTIONS,
    maxPendingPerAddress: values.GATEWAY_MAX_PENDING_PER_ADDRESS,
    connectsPerSecondPerAddress: values.GATEWAY_CONNECTS_PER_SECOND_PER_ADDRESS,
    fleetLeaseMs: values.GATEWAY_FLEET_LEASE_MS,
    logLevel: values.LOG_LEVEL,
  };
}

/** Collects at most one line per variable: the first problem found is the one to fix. */
class Issues {
  readonly list: ConfigIssue[] = [];
  readonly #seen = new Set<string>();

  get size(): number {
    return this.list.length;
  }

  has(variable: string): boolean {
    return this.#seen.has(variable);
  }

  add(variable: string, message: string): void {
    if (this.#seen.has(variable)) return;
    this.#seen.add(variable);
    this.list.push({ variable, message });
  }

  /** `NAME: expected <what>; got "<value>"`; the value is left out when it may be a secret. */
  invalid(variable: VariableName, value: string, expected = describe(variable).expects): void {
    const got = describe(variable).secret ? '' : `; got ${quote(value)}`;
    this.add(variable, `expected ${expected}${got}`);
  }

  missing(variable: VariableName, expected: string): void {
    this.add(variable, `expected ${expected}; not set`);
  }

  /** In the order of `--help`, so the lines read like the table they refer to. */
  sorted(): ConfigIssue[] {
    const rank = (issue: ConfigIssue) => {
      const first = issue.variable.split(',')[0];
      const index = CONFIG_VARIABLES.findIndex((v) => v.name === first);
      return index === -1 ? CONFIG_VARIABLES.length : index;
    };
    return this.list.toSorted((a, b) => rank(a) - rank(b));
  }
}

function describe(name: VariableName): ConfigVariable {
  const variable = VARIABLES.get(name);
  if (variable === undefined) throw new Error(`${name} is missing from CONFIG_VARIABLES`);
  return variable;
}

function quote(value: string): string {
  const max = 80;
  return JSON.stringify(value.length > max ? `${value.slice(0, max - 3)}...` : value);
}

/**
 * Picks the known variables, trimmed (secrets pasted from files often end with a newline).
 * An empty value counts as unset, as most deployment tools write an unset variable that way.
 * An unknown GATEWAY_* variable is a typo until proven otherwise: a misspelt
 * GATEWAY_PROXY_PROTOCOL would silently leave the gateway trusting the wrong client addresses.
 */
function readVariables(env: NodeJS.ProcessEnv, issues: Issues): Record<string, string> {
  const picked: Record<string, string> = {};
  for (const variable of CONFIG_VARIABLES) {
    const value = env[variable.name]?.trim();
    if (value === undefined || (value === '' && !variable.emptyIsValue)) continue;
    picked[variable.name] = value;
  }
  for (const name of Object.keys(env)) {
    if (name.startsWith('GATEWAY_') && !VARIABLES.has(name)) {
      issues.add(name, 'expected no unknown GATEWAY_* variable (a typo? --help lists them all)');
    }
  }
  return picked;
}

/**
 * Runs env-schema. When some variables fail, they are reported and the rest validated again
 * without them, so that one run reports every bad variable, not only the schema's.
 */
function validateSchema(picked: Record<string, string>, issues: Issues): SchemaValues {
  try {
    return runEnvSchema(picked);
  } catch (error) {
    const failed = failedVariables(error);
    if (failed.length === 0) throw error;
    const rest = { ...picked };
    for (const name of failed) {
      issues.invalid(name, picked[name] ?? '');
      delete rest[name];
    }
    return runEnvSchema(rest);
  }
}

function runEnvSchema(data: Record<string, string>): SchemaValues {
  // env: false, because the caller's env is the only input (tests pass their own).
  return envSchema<SchemaValues>({ schema: SCHEMA, data: { ...data }, env: false, dotenv: false });
}

/** The variables named by the Ajv errors env-schema attaches (`instancePath` `/NAME`). */
function failedVariables(error: unknown): VariableName[] {
  const errors = (error as { errors?: unknown }).errors;
  if (!Array.isArray(errors)) return [];
  const names = errors.map((e: { instancePath?: string }) => e.instancePath?.split('/')[1] ?? '');
  return [...new Set(names)].filter((name): name is VariableName => VARIABLES.has(name));
}

function parseListenVariable(name: VariableName, value: string, issues: Issues): ListenAddress | undefined {
  const address = parseListenAddress(value);
  if (address === undefined) issues.invalid(name, value);
  return address;
}

function parseAdminListen(value: string, issues: Issues): ListenAddress | undefined {
  if (value === '' || value.toLowerCase() === 'off') return undefined;
  return parseListenVariable('GATEWAY_ADMIN_LISTEN', value, issues);
}

function parseAdminTokens(values: readonly string[] | undefined, issues: Issues): string[] {
  const tokens = (values ?? []).map((token) => token.trim()).filter((token) => token !== '');
  const bad = badTokenIndex(tokens);
  if (bad === -1) return tokens;
  issues.invalid('GATEWAY_ADMIN_TOKENS', '', `${describe('GATEWAY_ADMIN_TOKENS').expects}; token ${bad + 1} is not`);
  return [];
}

function parseTrustedCidrs(value: string | undefined, mode: ProxyProtocolMode, issues: Issues): string[] | undefined {
  if (value === undefined) return undefined;
  const cidrs = value.split(',').map((item) => item.trim());
  const bad = cidrs.find((cidr) => parseCidr(cidr) === undefined);
  if (bad !== undefined) {
    issues.invalid('GATEWAY_PROXY_TRUSTED_CIDRS', value, `CIDR blocks, comma-separated, e.g. 10.0.0.0/16 ("${bad}" is not one)`);
    return undefined;
  }
  if (mode === 'off') {
    issues.invalid(
      'GATEWAY_PROXY_TRUSTED_CIDRS',
      value,
      'unset, or GATEWAY_PROXY_PROTOCOL optional or required: no header is read with it off',
    );
    return undefined;
  }
  return cidrs;
}

const DNS_SUFFIX = /^(?:\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)+$/;

/** Lower case, one leading dot, no trailing dot: the form the SNI match compares against. */
function normaliseSuffix(item: string): string {
  const lower = item.trim().toLowerCase().replace(/\.$/, '');
  return lower.startsWith('.') ? lower : `.${lower}`;
}

function parseSuffixes(value: string | undefined, required: boolean, issues: Issues): string[] | undefined {
  if (value === undefined) {
    if (required) issues.missing('GATEWAY_SNI_SUFFIXES', 'DNS suffixes such as .db.example.com, required with GATEWAY_TLS_CERT');
    return undefined;
  }
  const suffixes = value.split(',').map(normaliseSuffix);
  const bad = suffixes.find((s) => !DNS_SUFFIX.test(s) || s.length > 253);
  if (bad !== undefined) {
    issues.invalid('GATEWAY_SNI_SUFFIXES', value, `DNS suffixes, comma-separated, e.g. .db.example.com ("${bad}" is not one)`);
    return undefined;
  }
  if (new Set(suffixes).size !== suffixes.length) {
    issues.invalid('GATEWAY_SNI_SUFFIXES', value, 'DNS suffixes without repeats');
    return undefined;
  }
  return suffixes;
}

/**
 * A list is all paths or all PEM. PEM entries are split only where a comma is followed by the
 * next `-----BEGIN`, because one entry may be a whole chain and legacy PEM headers hold commas.
 */
function parsePemList(name: VariableName, value: string, kind: PemKind, issues: Issues): PemSource[] | undefined {
  const items = value.startsWith(PEM_BEGIN) ? value.split(/,\s*(?=-----BEGIN )/) : value.split(',');
  const sources = items.map((item) => pemSource(item.trim(), kind));
  if (sources.every((s): s is PemSource => s !== undefined)) return sources;
  issues.invalid(name, value);
  return undefined;
}

function parseTls(values: SchemaValues, suffixes: readonly string[] | undefined, issues: Issues): TlsConfig | undefined {
  const { GATEWAY_TLS_CERT: certValue, GATEWAY_TLS_KEY: keyValue } = values;
  if (certValue === undefined && keyValue === undefined) return undefined;
  if (certValue === undefined || keyValue === undefined) {
    if (certValue === undefined) issues.missing('GATEWAY_TLS_CERT', 'certificates for GATEWAY_TLS_KEY');
    else issues.missing('GATEWAY_TLS_KEY', 'private keys for GATEWAY_TLS_CERT');
    return undefined;
  }
  const certs = parsePemList('GATEWAY_TLS_CERT', certValue, 'certificate', issues);
  const keys = parsePemList('GATEWAY_TLS_KEY', keyValue, 'key', issues);
  if (certs === undefined || keys === undefined || suffixes === undefined) return undefined;
  if (keys.length !== certs.length) {
    issues.add('GATEWAY_TLS_KEY', `expected ${certs.length} private key(s), one per GATEWAY_TLS_CERT entry; got ${keys.length}`);
    return undefined;
  }
  // One certificate may cover every suffix (several SANs); otherwise they pair up by position.
  if (certs.length !== 1 && certs.length !== suffixes.length) {
    const expected = `1 certificate for every suffix, or ${suffixes.length} (one per GATEWAY_SNI_SUFFIXES entry)`;
    issues.add('GATEWAY_TLS_CERT', `expected ${expected}; got ${certs.length}`);
    return undefined;
  }
  const suffixesOf = (i: number) => (certs.length === 1 ? suffixes : [suffixes[i]]);
  return { certificates: certs.map((cert, i) => ({ suffixes: suffixesOf(i), cert, key: keys[i] })) };
}

function parseTenantDirectory(values: SchemaValues, issues: Issues): TenantDirectoryConfig | undefined {
  const { GATEWAY_TENANTS_FILE: file, GATEWAY_CONTROL_PLANE_URL: urlValue } = values;
  if ((file === undefined) === (urlValue === undefined)) {
    const got = file === undefined ? 'neither is set' : 'both are set';
    const expected = 'exactly one of them (a static tenants file, or the control plane)';
    issues.add('GATEWAY_TENANTS_FILE, GATEWAY_CONTROL_PLANE_URL', `expected ${expected}; ${got}`);
    return undefined;
  }
  if (file !== undefined) return { kind: 'file', path: file };
  const url = parseUrl('GATEWAY_CONTROL_PLANE_URL', urlValue, ['http:', 'https:'], issues);
  const token = values.GATEWAY_CONTROL_PLANE_TOKEN;
  if (token === undefined) issues.missing('GATEWAY_CONTROL_PLANE_TOKEN', 'the gateway token, required with GATEWAY_CONTROL_PLANE_URL');
  if (url === undefined || token === undefined) return undefined;
  // A trailing slash keeps a base path when routes are resolved against it (new URL('v1/...', url)).
  return { kind: 'control-plane', url: url.endsWith('/') ? url : `${url}/`, token };
}

function parseUrl(name: VariableName, value: string | undefined, protocols: string[], issues: Issues): string | undefined {
  if (value === undefined) return undefined;
  const url = URL.parse(value);
  if (url !== null && protocols.includes(url.protocol)) return url.href;
  issues.invalid(name, value);
  return undefined;
}

function parseBackend(values: SchemaValues, issues: Issues): BackendTlsSources {
  const { GATEWAY_BACKEND_CA: caValue, GATEWAY_BACKEND_CLIENT_CERT: certValue, GATEWAY_BACKEND_CLIENT_KEY: keyValue } = values;
  const ca = caValue === undefined ? undefined : parsePem('GATEWAY_BACKEND_CA', caValue, 'certificate', issues);
  const minVersion = values.GATEWAY_BACKEND_TLS_MIN_VERSION;
  if (certValue === undefined && keyValue === undefined) return { ca, client: undefined, minVersion };
  if (certValue === undefined) {
    issues.missing('GATEWAY_BACKEND_CLIENT_CERT', 'a client certificate for GATEWAY_BACKEND_CLIENT_KEY');
    return { ca, client: undefined, minVersion };
  }
  if (keyValue === undefined) {
    issues.missing('GATEWAY_BACKEND_CLIENT_KEY', 'the private key of GATEWAY_BACKEND_CLIENT_CERT');
    return { ca, client: undefined, minVersion };
  }
  const cert = parsePem('GATEWAY_BACKEND_CLIENT_CERT', certValue, 'certificate', issues);
  const key = parsePem('GATEWAY_BACKEND_CLIENT_KEY', keyValue, 'key', issues);
  return { ca, client: cert && key ? { cert, key } : undefined, minVersion };
}

/** OpenSSL takes a cipher list it cannot fully use; one that selects no cipher at all fails here, at start. */
function parseCiphers(value: string | undefined, issues: Issues): string | undefined {
  if (value === undefined) return undefined;
  try {
    createSecureContext({ ciphers: value });
  } catch (error) {
    issues.add(
      'GATEWAY_TLS_CIPHERS',
      `expected an OpenSSL cipher list that selects at least one cipher, got "${value}" (${(error as Error).message})`,
    );
    return undefined;
  }
  return value;
}

/** A single path or PEM (a CA bundle is one PEM value that may hold several certificates). */
function parsePem(name: VariableName, value: string, kind: PemKind, issues: Issues): PemSource | undefined {
  const source = pemSource(value, kind);
  if (source === undefined) issues.invalid(name, value);
  return source;
}
