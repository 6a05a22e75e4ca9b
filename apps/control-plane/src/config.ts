// The control plane's configuration: its table of environment variables (in libs/runtime, beside
// the gateway's), from which come the JSON schema that @fastify/env validates (types, enums,
// defaults, what is required), the error lines of a bad start-up, and the `--help` text, so a
// variable cannot be checked without being documented. The checks a schema cannot say
// (addresses, URLs, tokens) follow the schema.
// This module never reads process.env: main.ts hands the environment in.
import { statSync } from 'node:fs';
import Fastify from 'fastify';
import type { ComputeSettings } from './plugins/provisioning.ts';
import fastifyEnv from '@fastify/env';
import {
  CONTROL_PLANE_HELP,
  CONTROL_PLANE_VARIABLES,
  LISTEN_EXPECTS,
  badTokenIndex,
  parseListenAddress,
  pemSource,
  helpText as renderHelp,
  variablesSchema,
  type ConfigVariable,
  type ControlPlaneVariableName,
  type ListenAddress,
  type LogLevel,
  type PemSource,
} from '@tenantgate/runtime';

export { LOG_LEVELS, MIN_TOKEN_LENGTH, type ConfigVariable, type ListenAddress, type LogLevel } from '@tenantgate/runtime';

export const CONFIG_VARIABLES = CONTROL_PLANE_VARIABLES;

export type VariableName = ControlPlaneVariableName;

export type StoreConfig = { readonly kind: 'postgres'; readonly url: string } | { readonly kind: 'pglite'; readonly dataDir: string };

export interface ControlPlaneConfig {
  readonly listen: ListenAddress;
  readonly store: StoreConfig;
  readonly redisUrl: string | undefined;
  readonly adminTokens: readonly string[];
  readonly gatewayTokens: readonly string[];
  readonly allowLocalBackends: boolean;
  /** CONTROL_PLANE_SECRETS_DIR: clusters' admin credentials; absent: no clusters. */
  readonly secretsDir: string | undefined;
  /** CONTROL_PLANE_COMPUTE_*: absent: no compute driver (sleeping tenants are not woken). */
  readonly compute: ComputeSettings | undefined;
  /** CONTROL_PLANE_CA_CERT and _KEY: the CA that issues client certificates; absent: none is issued. */
  readonly issuingCa: { readonly cert: PemSource; readonly key: PemSource } | undefined;
  readonly logLevel: LogLevel;
}

export interface ConfigIssue {
  readonly variable: VariableName;
  readonly message: string;
}

/** Start-up must stop: one line per bad variable, each naming it and what it expects. */
export class ConfigError extends Error {
  readonly code = 'TG_ERR_CONFIG';
  readonly issues: readonly ConfigIssue[];
  constructor(issues: readonly ConfigIssue[]) {
    super(issues.map((i) => `${i.variable}: ${i.message}`).join('\n'));
    this.name = 'ConfigError';
    this.issues = issues;
  }
}

type Environment = Readonly<Record<string, string | undefined>>;

/** What @fastify/env hands back: defaults applied, lists split. */
interface RawValues {
  CONTROL_PLANE_LISTEN: string;
  DATABASE_URL?: string;
  CONTROL_PLANE_DATA_DIR: string;
  REDIS_URL?: string;
  CONTROL_PLANE_ADMIN_TOKENS: string[];
  CONTROL_PLANE_GATEWAY_TOKENS?: string[];
  CONTROL_PLANE_ALLOW_LOCAL_BACKENDS: boolean;
  CONTROL_PLANE_SECRETS_DIR?: string;
  CONTROL_PLANE_COMPUTE_WEBHOOK?: string;
  CONTROL_PLANE_COMPUTE_WEBHOOK_SECRET?: string;
  CONTROL_PLANE_COMPUTE_DRIVER: 'webhook' | 'local';
  CONTROL_PLANE_CA_CERT?: string;
  CONTROL_PLANE_CA_KEY?: string;
  LOG_LEVEL: LogLevel;
}

/** @throws ConfigError naming every bad variable, one line each */
export async function loadConfig(env: Environment): Promise<ControlPlaneConfig> {
  const { values: raw, issues } = await validateVariables(env, CONFIG_VARIABLES);
  const failed = new Set(issues.map((i) => i.variable));
  // Each check runs unless the schema already failed the variable, so one start-up names them all.
  const check = <T>(variable: VariableName, parse: () => T | string): T | undefined => {
    if (failed.has(variable)) return undefined;
    const value = parse();
    if (typeof value !== 'string') return value;
    issues.push({ variable, message: value });
    return undefined;
  };
  const listen = check('CONTROL_PLANE_LISTEN', () => parseListen(raw.CONTROL_PLANE_LISTEN));
  const store = check('DATABASE_URL', () => storeOf(raw));
  const redisIssue = raw.REDIS_URL === undefined ? undefined : urlIssue(raw.REDIS_URL, ['redis:', 'rediss:'], 'REDIS_URL');
  if (redisIssue !== undefined && !failed.has('REDIS_URL')) issues.push({ variable: 'REDIS_URL', message: redisIssue });
  const adminTokens = check('CONTROL_PLANE_ADMIN_TOKENS', () => parseTokens(raw.CONTROL_PLANE_ADMIN_TOKENS, 'CONTROL_PLANE_ADMIN_TOKENS'));
  const gatewayTokens = check('CONTROL_PLANE_GATEWAY_TOKENS', () => {
    const tokens = parseTokens(raw.CONTROL_PLANE_GATEWAY_TOKENS ?? [], 'CONTROL_PLANE_GATEWAY_TOKENS');
    if (typeof tokens === 'string' || !tokens.some((token) => adminTokens?.includes(token))) return tokens;
    return 'expected tokens that are not also admin tokens';
  });
  const issuingCa = parseIssuingCa(raw, issues);
  const secretsDir = check('CONTROL_PLANE_SECRETS_DIR', () => directoryOf(raw.CONTROL_PLANE_SECRETS_DIR));
  const compute = parseCompute(raw, issues, failed);
  if (issues.length > 0) throw new ConfigError(sortedIssues(issues));
  return {
    issuingCa,
    listen: listen as ListenAddress,
    store: store as StoreConfig,
    redisUrl: raw.REDIS_URL,
    adminTokens: adminTokens as string[],
    gatewayTokens: gatewayTokens as string[],
    allowLocalBackends: raw.CONTROL_PLANE_ALLOW_LOCAL_BACKENDS,
    secretsDir: secretsDir?.path,
    compute,
    logLevel: raw.LOG_LEVEL,
  };
}

/** The webhook with its secret (each needs the other), or the local driver. */
function parseCompute(raw: RawValues, issues: ConfigIssue[], failed: ReadonlySet<string>): ComputeSettings | undefined {
  if (raw.CONTROL_PLANE_COMPUTE_DRIVER === 'local') return { driver: 'local' };
  const { CONTROL_PLANE_COMPUTE_WEBHOOK: url, CONTROL_PLANE_COMPUTE_WEBHOOK_SECRET: secret } = raw;
  if (url === undefined && secret === undefined) return undefined;
  const before = issues.length;
  if (url === undefined)
    issues.push({ variable: 'CONTROL_PLANE_COMPUTE_WEBHOOK', message: 'expected it with CONTROL_PLANE_COMPUTE_WEBHOOK_SECRET; not set' });
  else if (!failed.has('CONTROL_PLANE_COMPUTE_WEBHOOK')) {
    const problem = urlIssue(url, ['http:', 'https:'], 'CONTROL_PLANE_COMPUTE_WEBHOOK');
    if (problem !== undefined) issues.push({ variable: 'CONTROL_PLANE_COMPUTE_WEBHOOK', message: problem });
  }
  if (secret === undefined)
    issues.push({ variable: 'CONTROL_PLANE_COMPUTE_WEBHOOK_SECRET', message: 'expected it with CONTROL_PLANE_COMPUTE_WEBHOOK; not set' });
  else if (secret.length < 16)
    issues.push({ variable: 'CONTROL_PLANE_COMPUTE_WEBHOOK_SECRET', message: 'expected a secret of at least 16 characters' });
  if (issues.length > before || url === undefined || secret === undefined) return undefined;
  return { driver: 'webhook', url, secret };
}

/** A directory that exists (credentials are read from it when a cluster is used, not now). */
function directoryOf(path: string | undefined): { path: string | undefined } | string {
  if (path === undefined) return { path };
  try {
    if (statSync(path).isDirectory()) return { path };
  } catch {
    // Reported below, as for a path that is a file.
  }
  return `expected a directory; "${path}" is not one`;
}

/** Both or neither: a certificate without its key (or the reverse) is a half-made setup. */
function parseIssuingCa(raw: RawValues, issues: ConfigIssue[]): ControlPlaneConfig['issuingCa'] {
  const { CONTROL_PLANE_CA_CERT: certValue, CONTROL_PLANE_CA_KEY: keyValue } = raw;
  if (certValue === undefined && keyValue === undefined) return undefined;
  if (certValue === undefined || keyValue === undefined) {
    const missing = certValue === undefined ? 'CONTROL_PLANE_CA_CERT' : 'CONTROL_PLANE_CA_KEY';
    issues.push({
      variable: missing,
      message: `expected it with ${missing === 'CONTROL_PLANE_CA_CERT' ? 'CONTROL_PLANE_CA_KEY' : 'CONTROL_PLANE_CA_CERT'}; not set`,
    });
    return undefined;
  }
  const cert = pemSource(certValue, 'certificate');
  const key = pemSource(keyValue, 'key');
  if (cert === undefined) issues.push({ variable: 'CONTROL_PLANE_CA_CERT', message: 'expected a CA certificate file path or PEM' });
  if (key === undefined) issues.push({ variable: 'CONTROL_PLANE_CA_KEY', message: 'expected a private key file path or PEM' });
  return cert === undefined || key === undefined ? undefined : { cert, key };
}

/** Only what `npm run migrate` needs: where the store is. @throws ConfigError */
export async function loadStoreConfig(env: Environment): Promise<{ store: StoreConfig; logLevel: LogLevel }> {
  const names = new Set<VariableName>(['DATABASE_URL', 'CONTROL_PLANE_DATA_DIR', 'LOG_LEVEL']);
  const { values, issues } = await validateVariables(
    env,
    CONFIG_VARIABLES.filter((v) => names.has(v.name)),
  );
  const store = issues.length > 0 ? undefined : storeOf(values);
  if (typeof store === 'string') issues.push({ variable: 'DATABASE_URL', message: store });
  if (store === undefined || typeof store === 'string') throw new ConfigError(issues);
  return { store, logLevel: values.LOG_LEVEL };
}

/**
 * Runs @fastify/env over the variables (an empty value counts as unset). When the schema fails,
 * the values are taken as given, with defaults, so the remaining checks can still run.
 */
async function validateVariables(
  env: Environment,
  variables: readonly ConfigVariable[],
): Promise<{ values: RawValues; issues: ConfigIssue[] }> {
  const data = Object.fromEntries(
    variables.flatMap(({ name }) => (env[name] === undefined || env[name].trim() === '' ? [] : [[name, env[name]]])),
  );
  const schema = variablesSchema(variables);
  const app = Fastify({ logger: false });
  try {
    await app.register(fastifyEnv, { schema, data, env: false, dotenv: false });
    await app.ready();
    return { values: app.getEnvs<RawValues>(), issues: [] };
  } catch (error) {
    return { values: valuesAsGiven(data, variables), issues: schemaIssues(error, env, variables) };
  } finally {
    await app.close();
  }
}

function valuesAsGiven(data: Record<string, string>, variables: readonly ConfigVariable[]): RawValues {
  const values: Record<string, unknown> = {};
  for (const { name, schema } of variables) {
    const value = data[name] ?? schema.default;
    values[name] = typeof value === 'string' && schema.separator !== undefined ? value.split(schema.separator) : value;
  }
  return values as unknown as RawValues;
}

function sortedIssues(issues: readonly ConfigIssue[]): ConfigIssue[] {
  const order = CONFIG_VARIABLES.map((v) => v.name as string);
  return [...issues].sort((a, b) => order.indexOf(a.variable) - order.indexOf(b.variable));
}

function schemaIssues(error: unknown, env: Environment, variables: readonly ConfigVariable[]): ConfigIssue[] {
  const errors = (error as { errors?: { instancePath: string; params: { missingProperty?: string } }[] }).errors;
  if (!Array.isArray(errors)) throw error;
  const bad = new Set(errors.map((e) => e.params.missingProperty ?? e.instancePath.replace(/^\//, '')));
  return variables
    .filter((v) => bad.has(v.name))
    .map((v) => {
      const value = env[v.name];
      if (value === undefined || value.trim() === '') return { variable: v.name as VariableName, message: `is required: ${v.expects}` };
      return { variable: v.name as VariableName, message: `expected ${v.expects}${shown(v, value)}` };
    });
}

function shown(variable: ConfigVariable, value: string): string {
  return variable.secret === true ? '' : `, got ${JSON.stringify(value)}`;
}

/** `host:port`, `[ipv6]:port` or `:port` (every IPv4 interface); an error line otherwise. */
export function parseListen(text: string): ListenAddress | string {
  return parseListenAddress(text.trim()) ?? `expected ${LISTEN_EXPECTS}, got ${JSON.stringify(text)}`;
}

function storeOf(raw: Pick<RawValues, 'DATABASE_URL' | 'CONTROL_PLANE_DATA_DIR'>): StoreConfig | string {
  if (raw.DATABASE_URL === undefined) return { kind: 'pglite', dataDir: raw.CONTROL_PLANE_DATA_DIR };
  return urlIssue(raw.DATABASE_URL, ['postgres:', 'postgresql:'], 'DATABASE_URL') ?? { kind: 'postgres', url: raw.DATABASE_URL };
}

/** An error line when `text` is not a URL of one of `protocols` (without the value: it may hold a password). */
function urlIssue(text: string, protocols: readonly string[], name: VariableName): string | undefined {
  try {
    if (protocols.includes(new URL(text).protocol)) return undefined;
  } catch {
    // Not a URL at all: the same answer as a URL of the wrong scheme.
  }
  return `expected ${expectsOf(name)}`;
}

function expectsOf(name: VariableName): string {
  return (CONFIG_VARIABLES.find((v) => v.name === name) as ConfigVariable).expects;
}

function parseTokens(values: readonly string[], name: VariableName): string[] | string {
  const tokens = values.map((t) => t.trim());
  const bad = badTokenIndex(tokens);
  if (bad === -1) return tokens;
  return `expected ${expectsOf(name)}; token ${bad + 1} is not`;
}

/** The `--help` text: every variable with its default, what it does and the values it accepts. */
export function helpText(): string {
  return renderHelp(CONTROL_PLANE_HELP);
}
