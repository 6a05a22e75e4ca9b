// The tenant record's JSON Schema: one shape for `POST /v1/tenants`, the entries of a static
// tenants file and (with version, timestamps and secrets) the routing view gateways cache.
// Plain JSON Schema (draft-07), so Fastify validates and documents it without translation.

export const TENANT_ID_PATTERN = '^[a-z0-9-]{1,63}$';

/** pg_authid format: SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>, base64 parts. */
export const SCRAM_SECRET_PATTERN = '^SCRAM-SHA-256\\$[1-9][0-9]{0,9}:[A-Za-z0-9+/]+={0,2}\\$[A-Za-z0-9+/]{43}=:[A-Za-z0-9+/]{43}=$';

/** A name under GATEWAY_SECRETS_DIR: no path separators, no leading dot. */
export const CERTIFICATE_REF_PATTERN = '^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$';

const pem = { type: 'string', minLength: 1, maxLength: 65536, pattern: '-----BEGIN CERTIFICATE-----' } as const;
const postgresName = { type: 'string', minLength: 1, maxLength: 63, pattern: '^[^\\u0000]+$' } as const;

/**
 * Where the tenant's PostgreSQL is: an address, or `cluster` (the id of a cluster registered with
 * the control plane, which then provisions the database and fills in the address).
 */
export const backendSchema = {
  type: 'object',
  additionalProperties: false,
  anyOf: [
    { type: 'object', required: ['host'] },
    { type: 'object', required: ['cluster'] },
  ],
  properties: {
    cluster: { type: 'string', pattern: TENANT_ID_PATTERN },
    host: { type: 'string', minLength: 1, maxLength: 253, pattern: '^[A-Za-z0-9.:_-]+$' },
    port: { type: 'integer', minimum: 1, maximum: 65535, default: 5432 },
    serverName: { type: 'string', minLength: 1, maxLength: 253, pattern: '^[A-Za-z0-9.:_-]+$' },
    database: postgresName,
    caCertificate: pem,
    clientCertificate: { type: 'string', pattern: CERTIFICATE_REF_PATTERN },
    tls: {
      type: 'object',
      additionalProperties: false,
      properties: { minVersion: { type: 'string', enum: ['TLSv1.2', 'TLSv1.3'] } },
    },
  },
} as const;

export const roleSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['name'],
  properties: {
    name: postgresName,
    scramSecret: { type: 'string', pattern: SCRAM_SECRET_PATTERN },
    password: { type: 'string', minLength: 1, maxLength: 1024 },
    backendUser: postgresName,
    authMode: { type: 'string', enum: ['gateway', 'certificate', 'certificate+scram'] },
  },
  oneOf: [{ required: ['scramSecret'] }, { required: ['password'] }],
} as const;

export const limitsSchema = {
  type: 'object',
  additionalProperties: false,
  properties: {
    maxConnections: { type: 'integer', minimum: 0, maximum: 1_000_000, default: 100 },
    connectsPerSecond: { type: 'integer', minimum: 0, maximum: 1_000_000, default: 50 },
  },
  default: {},
} as const;

export const tenantSchema = {
  $id: 'https://tenantgate.dev/schemas/tenant.json',
  type: 'object',
  additionalProperties: false,
  required: ['id', 'backend'],
  properties: {
    id: { type: 'string', pattern: TENANT_ID_PATTERN },
    status: { type: 'string', enum: ['active', 'suspended', 'maintenance', 'sleeping'], default: 'active' },
    backend: backendSchema,
    authMode: { type: 'string', enum: ['gateway', 'passthrough', 'certificate', 'certificate+scram'], default: 'gateway' },
    clientCaCertificate: pem,
    clientCertificates: {
      type: 'object',
      additionalProperties: false,
      properties: {
        maxTtlSeconds: { type: 'integer', minimum: 60, maximum: 86_400 },
        // An ISO 8601 instant (set by a revoke); checked by validateTenantInput.
        notBefore: { type: 'string', minLength: 20, maxLength: 35 },
      },
    },
    userRewrite: {
      type: 'object',
      additionalProperties: false,
      properties: { template: { type: 'string', minLength: 1, maxLength: 255 } },
      default: {},
    },
    roles: { type: 'array', items: roleSchema, maxItems: 10_000, default: [] },
    allowedCidrs: {
      type: 'array',
      items: { type: 'string', minLength: 2, maxLength: 49 },
      maxItems: 1000,
      default: ['0.0.0.0/0', '::/0'],
    },
    limits: limitsSchema,
    replication: { type: 'string', enum: ['none', 'logical', 'physical'], default: 'none' },
    idleSuspendSeconds: { type: 'integer', minimum: 1, maximum: 31_536_000 },
  },
} as const;

export const tenantsFileSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['tenants'],
  properties: { tenants: { type: 'array', items: tenantSchema } },
} as const;
