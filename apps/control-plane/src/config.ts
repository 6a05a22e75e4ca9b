// The control plane's configuration: one table of environment variables, from which come the
// JSON schema that @fastify/env validates (types, enums, defaults, what is required), the error
// lines of a bad start-up, and the `--help` text, so a variable cannot be checked without being
// documented. The checks a schema cannot say (addresses, URLs, tokens) follow the schema.
// This module never reads process.env: main.ts hands the environment in.
import Fastify from 'fastify';
import fastifyEnv from '@fastify/env';

export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

/** Shortest token accepted: a guessable token would open the whole API. */
export const MIN_TOKEN_LENGTH = 16;
const MAX_TOKEN_LENGTH = 256;
/** The token characters of RFC 6750 (b64token), which is what a Bearer header can carry. */
const TOKEN = /^[A-Za-z0-9\-._~+/]+=*$/;

export interface ConfigVariable {
  readonly name: string;
  readonly schema: { readonly type: 'string'; readonly default?: string; readonly enum?: readonly string[]; readonly separator?: string };
  readonly required?: boolean;
  /** What a valid value looks like, for error lines and --help. */
  readonly expects: string;
  readonly description: string;
  /** Never echo the value: it may hold a credential. */
  readonly secret?: boolean;
}

const LISTEN_EXPECTS = 'host:port, [ipv6]:port or :port, with a port from 0 to 65535';
const TOKENS_EXPECTS = `tokens of ${MIN_TOKEN_LENGTH} to ${MAX_TOKEN_LENGTH} characters (A-Z a-z 0-9 - . _ ~ + / =), comma-separated`;

export const CONFIG_VARIABLES = [
  {
    name: 'CONTROL_PLANE_LISTEN',
    schema: { type: 'string', default: '127.0.0.1:8080' },
    expects: LISTEN_EXPECTS,
    description: 'Address of the REST API; ":8080" means every IPv4 interface.',
  },
  {
    name: 'DATABASE_URL',
    schema: { type: 'string' },
    expects: 'a postgres:// or postgresql:// URL',
    description: 'PostgreSQL store (migrated at start). Unset: embedded PGlite in CONTROL_PLANE_DATA_DIR.',
    secret: true,
  },
  {
    name: 'CONTROL_PLANE_DATA_DIR',
    schema: { type: 'string', default: '.data/control-plane' },
    expects: 'a directory path',
    description: 'Data directory of the embedded PGlite store (only without DATABASE_URL); created if missing.',
  },
  {
    name: 'REDIS_URL',
    schema: { type: 'string' },
    expects: 'a redis:// or rediss:// URL',
    description: 'Redis that gateways cache routes in; every write publishes an invalidation there. Unset: none published.',
    secret: true,
  },
  {
    name: 'CONTROL_PLANE_ADMIN_TOKENS',
    schema: { type: 'string', separator: ',' },
    required: true,
    expects: `one or more ${TOKENS_EXPECTS}`,
    description: 'Bearer tokens that may read and write everything. Required.',
    secret: true,
  },
  {
    name: 'CONTROL_PLANE_GATEWAY_TOKENS',
    schema: { type: 'string', separator: ',' },
    expects: TOKENS_EXPECTS,
    description: 'Bearer tokens that may only read routes (GET /v1/routes/:id), one per gateway fleet.',
    secret: true,
  },
  {
    name: 'LOG_LEVEL',
    schema: { type: 'string', enum: LOG_LEVELS, default: 'info' },
    expects: `one of ${LOG_LEVELS.join(', ')}`,
    description: 'Least severe level logged (pino JSON lines on stdout).',
  },
] as const satisfies readonly ConfigVariable[];

export type VariableName = (typeof CONFIG_VARIABLES)[number]['name'];

export interface ListenAddress {
  readonly host: string;
  readonly port: number;
}

export type StoreConfig =
  | { readonly kind: 'postgres'; readonly url: string }
  | { readonly kind: 'pglite'; readonly dataDir: string };

export interface ControlPlaneConfig {
  readonly listen: ListenAddress;
  readonly store: StoreConfig;
  readonly redisUrl: string | undefined;
  readonly adminTokens: readonly string[];
  readonly gatewayTokens: readonly string[];
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
  if (issues.length > 0) throw new ConfigError(sortedIssues(issues));
  return {
    listen: listen as ListenAddress,
    store: store as StoreConfig,
    redisUrl: raw.REDIS_URL,
    adminTokens: adminTokens as string[],
    gatewayTokens: gatewayTokens as string[],
    logLevel: raw.LOG_LEVEL,
  };
}

/** Only what `npm run migrate` needs: where the store is. @throws ConfigError */
export async function loadStoreConfig(env: Environment): Promise<{ store: StoreConfig; logLevel: LogLevel }> {
  const names = new Set<VariableName>(['DATABASE_URL', 'CONTROL_PLANE_DATA_DIR', 'LOG_LEVEL']);
  const { values, issues } = await validateVariables(env, CONFIG_VARIABLES.filter((v) => names.has(v.name)));
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
  const schema = {
    type: 'object',
    required: variables.filter((v) => v.required).map((v) => v.name),
    properties: Object.fromEntries(variables.map((v) => [v.name, { ...v.schema }])),
  };
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
    values[name] = value !== undefined && schema.separator !== undefined ? value.split(schema.separator) : value;
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
  const match = /^(?:\[([0-9A-Fa-f:.]+)\]|([^\s:[\]]*)):(\d{1,5})$/.exec(text.trim());
  const port = match === null ? Number.NaN : Number(match[3]);
  if (match === null || port > 65535) return `expected ${LISTEN_EXPECTS}, got ${JSON.stringify(text)}`;
  const host = match[1] ?? (match[2] === '' ? '0.0.0.0' : match[2]);
  return { host, port };
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
  const bad = tokens.findIndex((t) => t.length < MIN_TOKEN_LENGTH || t.length > MAX_TOKEN_LENGTH || !TOKEN.test(t));
  if (bad === -1) return tokens;
  return `expected ${expectsOf(name)}; token ${bad + 1} is not`;
}

/** The `--help` text: every variable, its default and what it expects. */
export function helpText(): string {
  const lines = [
    'tenantgate control plane: the REST API that provisions tenants (OpenAPI at /docs).',
    '',
    'Usage: npm run control-plane            (or: node apps/control-plane/src/main.ts [--help])',
    '',
    'Configured by environment variables (an empty value counts as unset):',
  ];
  for (const v of CONFIG_VARIABLES as readonly ConfigVariable[]) {
    const setting = v.required === true ? 'required' : 'default' in v.schema ? `default ${v.schema.default}` : 'optional, no default';
    lines.push('', `  ${v.name}  (${setting})`, `      ${v.description}`, `      Expects ${v.expects}.`);
  }
  lines.push('', 'A bad value stops start-up (exit status 2) with one line naming the variable.');
  return lines.join('\n');
}
