// The gateway's environment variables. apps/gateway validates them with env-schema and turns
// them into a GatewayConfig; its `--help` is generated from this table.
import type { HelpPage } from './help.ts';
import { TOKENS_EXPECTS } from './tokens.ts';
import { LISTEN_EXPECTS, LOG_LEVEL_VARIABLE, type ConfigVariable } from './variables.ts';

export const PROXY_PROTOCOL_MODES = ['off', 'optional', 'required'] as const;

/** The TLS versions a leg may require at least: 1.0 and 1.1 are deprecated (RFC 8996). */
export const TLS_MIN_VERSIONS = ['TLSv1.2', 'TLSv1.3'] as const;

const MAX_TIMEOUT_MS = 3_600_000;

function timeout<N extends string>(name: N, defaultMs: number, description: string): ConfigVariable & { name: N } {
  return {
    name,
    schema: { type: 'integer', default: defaultMs, minimum: 1, maximum: MAX_TIMEOUT_MS },
    expects: `milliseconds, an integer from 1 to ${MAX_TIMEOUT_MS}`,
    description,
  };
}

const GATEWAY_TABLE = [
  {
    name: 'GATEWAY_LISTEN',
    schema: { type: 'string', default: '0.0.0.0:5432' },
    expects: LISTEN_EXPECTS,
    description: 'Address for Postgres clients; ":5432" means every IPv4 interface, "[::]:5432" IPv6 too.',
  },
  {
    name: 'GATEWAY_WORKERS',
    schema: { type: 'string', default: '1', pattern: '^(auto|[1-9][0-9]{0,2})$' },
    expects: 'an integer from 1 to 999, or auto',
    description: 'Worker processes sharing the listen port (reusePort); auto = one per available CPU.',
  },
  {
    name: 'GATEWAY_TLS_CERT',
    schema: { type: 'string' },
    expects: 'certificate file paths or PEM certificates, comma-separated',
    description:
      'Server certificate chains (paths or PEM), comma-separated: one for every suffix, or one per GATEWAY_SNI_SUFFIXES entry in its order.',
  },
  {
    name: 'GATEWAY_TLS_KEY',
    schema: { type: 'string' },
    expects: 'private key file paths or PEM keys, comma-separated, one per GATEWAY_TLS_CERT entry',
    description: 'Private keys of GATEWAY_TLS_CERT, in the same order (paths or unencrypted PEM).',
    secret: true,
  },
  {
    name: 'GATEWAY_SNI_SUFFIXES',
    schema: { type: 'string' },
    expects: 'DNS suffixes, comma-separated, e.g. .db.example.com',
    description:
      'Hostname suffixes, comma-separated; the label before one is the tenant id (acme.db.example.com -> acme). Required with TLS.',
  },
  {
    name: 'GATEWAY_TLS_MIN_VERSION',
    schema: { type: 'string', default: 'TLSv1.2', enum: TLS_MIN_VERSIONS },
    expects: `one of ${TLS_MIN_VERSIONS.join(', ')}`,
    description: 'Oldest TLS version a client may use; TLSv1.3 refuses clients that cannot (libpq before 1.1.1 OpenSSL).',
  },
  {
    name: 'GATEWAY_TLS_CIPHERS',
    schema: { type: 'string' },
    expects: 'an OpenSSL cipher list, e.g. ECDHE+AESGCM:ECDHE+CHACHA20',
    description: "Client-leg ciphers, an OpenSSL cipher list (TLS 1.3 suites by their names too); absent: Node's defaults.",
  },
  {
    name: 'GATEWAY_ALLOW_PLAINTEXT',
    schema: { type: 'boolean', default: false },
    expects: 'true or false',
    description: 'Development only: accept clients without TLS; TLS variables become optional.',
  },
  {
    name: 'GATEWAY_TENANTS_FILE',
    schema: { type: 'string' },
    expects: 'the path of a tenants file',
    description: 'Static tenants file ({ "tenants": [...] }); set this or GATEWAY_CONTROL_PLANE_URL.',
  },
  {
    name: 'GATEWAY_CONTROL_PLANE_URL',
    schema: { type: 'string' },
    expects: 'an http:// or https:// URL',
    description: 'Base URL of the control plane that serves /v1/routes/:id; set this or GATEWAY_TENANTS_FILE.',
  },
  {
    name: 'GATEWAY_CONTROL_PLANE_TOKEN',
    schema: { type: 'string' },
    expects: "the gateway's control plane token",
    description: 'Gateway token sent to the control plane; required with GATEWAY_CONTROL_PLANE_URL.',
    secret: true,
  },
  {
    name: 'REDIS_URL',
    schema: { type: 'string' },
    expects: 'a redis:// or rediss:// URL',
    description:
      "Route cache, cancel keys and tenant limits shared by the gateways, and the control plane's invalidations; unset: in-process only. Cached routes hold role secrets: use rediss://[user]:password@host (a private CA: NODE_EXTRA_CA_CERTS).",
    // The URL may carry the Redis password.
    secret: true,
  },
  {
    name: 'GATEWAY_BACKEND_CA',
    schema: { type: 'string' },
    expects: 'a CA certificate file path or PEM',
    description: "Default CA for backends' server certificates (path or PEM); a tenant's caCertificate overrides it.",
  },
  {
    name: 'GATEWAY_BACKEND_CLIENT_CERT',
    schema: { type: 'string' },
    expects: 'a client certificate file path or PEM',
    description: 'Default client certificate for backend mTLS (path or PEM); set with GATEWAY_BACKEND_CLIENT_KEY.',
  },
  {
    name: 'GATEWAY_BACKEND_CLIENT_KEY',
    schema: { type: 'string' },
    expects: 'a private key file path or PEM',
    description: 'Private key of GATEWAY_BACKEND_CLIENT_CERT (path or unencrypted PEM).',
    secret: true,
  },
  {
    name: 'GATEWAY_BACKEND_TLS_MIN_VERSION',
    schema: { type: 'string', default: 'TLSv1.2', enum: TLS_MIN_VERSIONS },
    expects: `one of ${TLS_MIN_VERSIONS.join(', ')}`,
    description: "Oldest TLS version a backend may use, unless the tenant's backend.tls.minVersion says otherwise.",
  },
  {
    name: 'GATEWAY_SECRETS_DIR',
    schema: { type: 'string' },
    expects: 'a directory path',
    description: "Directory of <name>.crt and <name>.key for tenants' backend.clientCertificate names.",
  },
  {
    name: 'GATEWAY_PROXY_PROTOCOL',
    schema: { type: 'string', default: 'off', enum: PROXY_PROTOCOL_MODES },
    expects: `one of ${PROXY_PROTOCOL_MODES.join(', ')}`,
    description:
      'PROXY protocol header (v2, or v1 text) from the load balancer, for the real client address; without GATEWAY_PROXY_TRUSTED_CIDRS any peer that reaches the port may send one.',
  },
  {
    name: 'GATEWAY_PROXY_TRUSTED_CIDRS',
    schema: { type: 'string' },
    expects: 'CIDR blocks, comma-separated, e.g. 10.0.0.0/16,fd00::/8',
    description:
      "The load balancers' subnets: only their PROXY headers are read; any other peer connects as a direct client, and is closed if it sends one. Unset: every peer's header is taken.",
  },
  {
    name: 'GATEWAY_ADMIN_LISTEN',
    schema: { type: 'string', default: '127.0.0.1:9187' },
    expects: `${LISTEN_EXPECTS}; or empty or off to disable`,
    description: 'Admin HTTP (/metrics, /healthz, /readyz); empty or "off" disables it.',
    emptyIsValue: true,
  },
  {
    name: 'GATEWAY_ADMIN_TOKENS',
    schema: { type: 'string', separator: ',' },
    expects: TOKENS_EXPECTS,
    description:
      "Bearer tokens for the admin port's session endpoints (GET /sessions, DELETE /sessions/:id); unset: those answer 403. /healthz, /readyz and /metrics need none.",
    secret: true,
  },
  {
    name: 'GATEWAY_DRAIN_SECONDS',
    schema: { type: 'integer', default: 30, minimum: 0, maximum: 86_400 },
    expects: 'seconds, an integer from 0 to 86400',
    description: 'On SIGTERM, how long sessions may finish before the rest are closed.',
  },
  timeout(
    'GATEWAY_HANDSHAKE_TIMEOUT_MS',
    10_000,
    'From accept to a complete StartupMessage (PROXY header, TLS handshake, startup packet).',
  ),
  timeout('GATEWAY_AUTH_TIMEOUT_MS', 30_000, 'From the StartupMessage until the client is authenticated (tenant resolution included).'),
  timeout(
    'GATEWAY_WAKE_TIMEOUT_MS',
    30_000,
    'How long a client of a sleeping tenant is held, once authenticated, while its compute starts; then 57P03.',
  ),
  timeout(
    'GATEWAY_BACKEND_CONNECT_TIMEOUT_MS',
    10_000,
    "Backend TCP connect, TLS handshake and startup, up to the backend's first ReadyForQuery.",
  ),
  {
    name: 'GATEWAY_MAX_PENDING_CONNECTIONS',
    schema: { type: 'integer', default: 1000, minimum: 1, maximum: 1_000_000 },
    expects: 'an integer from 1 to 1000000',
    description: 'Per worker, connections accepted but not yet spliced; beyond it new ones are refused.',
  },
  {
    name: 'GATEWAY_MAX_PENDING_PER_ADDRESS',
    schema: { type: 'integer', default: 64, minimum: 1, maximum: 1_000_000 },
    expects: 'an integer from 1 to 1000000',
    description: "Per worker, connections not yet spliced from one client address (the PROXY header's source when there is one).",
  },
  {
    name: 'GATEWAY_CONNECTS_PER_SECOND_PER_ADDRESS',
    schema: { type: 'integer', default: 100, minimum: 0, maximum: 1_000_000 },
    expects: 'an integer from 0 to 1000000',
    description: 'Per worker, new connections a second from one client address, with bursts of twice that; 0 turns the limit off.',
  },
  {
    name: 'GATEWAY_FLEET_LEASE_MS',
    schema: { type: 'integer', default: 30_000, minimum: 1000, maximum: 600_000 },
    expects: 'milliseconds from 1000 to 600000',
    description:
      "With REDIS_URL: a session's lease on its tenant's connection cap, shared by the fleet, renewed every third of this; a gateway that dies gives the capacity back within it.",
  },
  LOG_LEVEL_VARIABLE,
] as const satisfies readonly ConfigVariable[];

export type GatewayVariableName = (typeof GATEWAY_TABLE)[number]['name'];

/** Every variable, in `--help` order; the names are literal types, so a typo does not compile. */
export const GATEWAY_VARIABLES: readonly (ConfigVariable & { readonly name: GatewayVariableName })[] = GATEWAY_TABLE;

export const GATEWAY_HELP: HelpPage = {
  title: 'tenantgate gateway: Postgres TLS termination, SNI routing, edge authentication, mTLS splice.',
  usage: 'npm run gateway                 (or: node apps/gateway/src/main.ts [--help])',
  intro: [
    'Configured by environment variables (an empty value counts as unset, except where it means',
    'off). Certificates and keys take a file path or the PEM text itself.',
  ],
  variables: GATEWAY_VARIABLES,
  // Read by the OpenTelemetry SDK itself, so listed but not validated here.
  notes: [
    {
      name: 'OTEL_*',
      description: 'Standard OpenTelemetry variables; traces are off unless they say where to send them.',
      expects: 'the values the OpenTelemetry specification gives them',
    },
  ],
};
