// The control plane's environment variables. apps/control-plane validates them with
// @fastify/env and turns them into a ControlPlaneConfig; its `--help` is generated from this table.
import type { HelpPage } from './help.ts';
import { TOKENS_EXPECTS } from './tokens.ts';
import { LISTEN_EXPECTS, LOG_LEVEL_VARIABLE, type ConfigVariable } from './variables.ts';

const CONTROL_PLANE_TABLE = [
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
    description:
      'Redis that gateways cache routes in; every write publishes an invalidation there. Unset: none published. rediss://[user]:password@host for TLS (a private CA: NODE_EXTRA_CA_CERTS).',
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
    name: 'CONTROL_PLANE_CA_CERT',
    schema: { type: 'string' },
    expects: 'a CA certificate file path or PEM',
    description:
      "Issuing CA (path or PEM) for short-lived client certificates of tenants' roles (POST /v1/tenants/:id/roles/:role/certificates); absent: no issuing.",
  },
  {
    name: 'CONTROL_PLANE_CA_KEY',
    schema: { type: 'string' },
    expects: 'a private key file path or PEM',
    description: 'Private key of CONTROL_PLANE_CA_CERT (path or unencrypted PEM).',
    secret: true,
  },
  {
    name: 'CONTROL_PLANE_SECRETS_DIR',
    schema: { type: 'string' },
    expects: 'a directory path',
    description:
      "Directory of clusters' admin credentials: <name>.crt and <name>.key (a client certificate) or <name>.password, named by a cluster's adminCredential. Unset: no clusters (POST /v1/clusters answers 501).",
  },
  {
    name: 'CONTROL_PLANE_COMPUTE_WEBHOOK',
    schema: { type: 'string' },
    expects: 'an http:// or https:// URL',
    description:
      'Where the control plane POSTs {"tenant","action":"wake"|"suspend"} to start or stop a tenant\'s compute; the platform then sets the status (PATCH). Unset: sleeping tenants are not woken.',
  },
  {
    name: 'CONTROL_PLANE_COMPUTE_WEBHOOK_SECRET',
    schema: { type: 'string' },
    expects: 'a secret of at least 16 characters',
    description:
      'Signs each webhook request: Tenantgate-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>">. Required with the webhook.',
    secret: true,
  },
  {
    name: 'CONTROL_PLANE_COMPUTE_DRIVER',
    schema: { type: 'string', default: 'webhook', enum: ['webhook', 'local'] },
    expects: 'webhook or local',
    description:
      "webhook: CONTROL_PLANE_COMPUTE_WEBHOOK starts and stops computes. local: pg_ctl on the dataDirectory of the tenant's cluster, on this machine (npm run demo).",
  },
  {
    name: 'CONTROL_PLANE_ALLOW_LOCAL_BACKENDS',
    schema: { type: 'boolean', default: false },
    expects: 'true or false',
    description: 'Accept tenants whose backend host is loopback, link-local or localhost (a single-machine setup).',
  },
  LOG_LEVEL_VARIABLE,
] as const satisfies readonly ConfigVariable[];

export type ControlPlaneVariableName = (typeof CONTROL_PLANE_TABLE)[number]['name'];

/** Every variable, in `--help` order. */
export const CONTROL_PLANE_VARIABLES: readonly (ConfigVariable & { readonly name: ControlPlaneVariableName })[] = CONTROL_PLANE_TABLE;

export const CONTROL_PLANE_HELP: HelpPage = {
  title: 'tenantgate control plane: the REST API that provisions tenants (OpenAPI at /docs).',
  usage: 'npm run control-plane           (or: node apps/control-plane/src/main.ts [--help])',
  intro: ['Configured by environment variables (an empty value counts as unset).'],
  variables: CONTROL_PLANE_VARIABLES,
  // Read by the OpenTelemetry SDK itself, so listed but not validated here.
  notes: [
    {
      name: 'OTEL_*',
      description:
        "Standard OpenTelemetry variables; traces are off unless they say where to send them. Requests continue the gateways' traces.",
      expects: 'the values the OpenTelemetry specification gives them',
    },
  ],
};
