// The JSON schemas of the REST API: request bodies, parameters and responses. They validate
// requests and, through @fastify/swagger, are the OpenAPI document at /docs/json, so the docs
// cannot drift from what is enforced. The tenant record itself is libs/tenancy's schema.
import { backendSchema, CERTIFICATE_REF_PATTERN, roleSchema, TENANT_ID_PATTERN, tenantSchema } from '@tenantgate/tenancy';

type Schema = Record<string, unknown>;

/** Shared schemas, added once with addSchema and referenced as `{ $ref: '<$id>#' }`. */
export const SchemaId = {
  TenantInput: 'TenantInput',
  TenantPatch: 'TenantPatch',
  RoleInput: 'RoleInput',
  TenantView: 'TenantView',
  TenantRoute: 'TenantRoute',
  TenantList: 'TenantList',
  Error: 'Error',
} as const;

export function ref(id: (typeof SchemaId)[keyof typeof SchemaId]): Schema {
  return { $ref: `${id}#` };
}

const { $id: _tenantSchemaId, ...tenantRecord } = tenantSchema;
const record = tenantSchema.properties;
const postgresName = roleSchema.properties.name;

/** A copy without `default`: a patch must not fill in what it does not change. */
function withoutDefault(schema: Schema): Schema {
  const { default: _default, ...rest } = schema;
  return rest;
}

const tenantInput = {
  ...tenantRecord,
  $id: SchemaId.TenantInput,
  description: 'The tenant record. A role gives "password" (stored only as a SCRAM secret) or "scramSecret" (pg_authid format).',
};

const objectPatch = (what: string) => ({
  type: 'object',
  description: `Merged into the current ${what} (JSON Merge Patch: null removes a field).`,
});

const tenantPatch = {
  $id: SchemaId.TenantPatch,
  type: 'object',
  additionalProperties: false,
  minProperties: 1,
  description:
    'JSON Merge Patch (RFC 7386) of the tenant record; the result is validated as a whole. The id is fixed; roles have their own endpoints.',
  properties: {
    status: withoutDefault(record.status),
    backend: objectPatch('backend'),
    authMode: withoutDefault(record.authMode),
    clientCaCertificate: {
      anyOf: [{ type: 'string' }, { type: 'null' }],
      description: 'PEM CA certificates that client certificates must chain to; null removes them.',
    },
    userRewrite: objectPatch('userRewrite'),
    allowedCidrs: withoutDefault(record.allowedCidrs),
    limits: objectPatch('limits'),
    clientCertificates: objectPatch('clientCertificates'),
    replication: withoutDefault(record.replication),
    idleSuspendSeconds: {
      anyOf: [record.idleSuspendSeconds, { type: 'null' }],
      description: 'Put to sleep once no gateway has held a session for this long; null: never.',
    },
    terminateSessions: {
      type: 'boolean',
      description:
        'Not part of the record: true ends the tenant\'s open sessions on every gateway once the change is committed (with "status": "suspended", a suspension that takes effect at once). The response\'s Tenantgate-Sessions-Ended header says how many.',
    },
  },
};

const roleInput = {
  $id: SchemaId.RoleInput,
  type: 'object',
  additionalProperties: false,
  description: 'Exactly one of "password" and "scramSecret"; "backendUser" rewrites the startup user.',
  properties: {
    password: roleSchema.properties.password,
    scramSecret: roleSchema.properties.scramSecret,
    backendUser: postgresName,
    authMode: roleSchema.properties.authMode,
  },
  oneOf: roleSchema.oneOf,
};

const bookkeeping = {
  version: {
    type: 'integer',
    minimum: 1,
    description: 'Raised by every write, from one sequence for all tenants; the ETag.',
  },
  createdAt: { type: 'string', format: 'date-time' },
  updatedAt: { type: 'string', format: 'date-time' },
};

/** Fields a stored record may lack: every other field of the record is always in a response. */
const OPTIONAL_FIELDS = new Set(['clientCaCertificate', 'clientCertificates', 'provisioning', 'compute', 'idleSuspendSeconds']);

const jobError = {
  type: 'object',
  required: ['code', 'message'],
  properties: { code: { type: 'string' }, message: { type: 'string' }, details: { type: 'object', additionalProperties: true } },
};

const provisioning = {
  type: 'object',
  required: ['cluster', 'state'],
  description: 'Only for a tenant on a cluster (backend.cluster): where its database is being made, or why that failed.',
  properties: {
    cluster: { type: 'string' },
    state: { type: 'string', enum: ['provisioning', 'active', 'failed'] },
    reason: { ...jobError, description: 'Why it failed (state failed), or the last failure of an attempt still in progress.' },
  },
};

function tenantResponse(id: string, role: Schema, description: string, extra: Schema = {}): Schema {
  const properties = { ...record, roles: { type: 'array', items: role }, ...bookkeeping, ...extra };
  return {
    $id: id,
    type: 'object',
    description,
    required: Object.keys(properties).filter((name) => !OPTIONAL_FIELDS.has(name)),
    properties,
  };
}

const adminRole = {
  type: 'object',
  required: ['name'],
  properties: { name: postgresName, backendUser: postgresName, authMode: roleSchema.properties.authMode },
};

const routeRole = {
  type: 'object',
  required: ['name', 'scramSecret'],
  properties: {
    name: postgresName,
    scramSecret: roleSchema.properties.scramSecret,
    backendUser: postgresName,
    authMode: roleSchema.properties.authMode,
  },
};

const compute = {
  type: 'object',
  required: ['state', 'since'],
  description: "While a sleeping tenant's compute is being woken or an idle one's suspended; gone once the status changes.",
  properties: {
    state: { type: 'string', enum: ['waking', 'suspending'] },
    since: { type: 'string', format: 'date-time' },
    lastError: { ...jobError, description: "The compute driver's last failure (the webhook's answer, pg_ctl's words)." },
  },
};

const tenantView = tenantResponse(SchemaId.TenantView, adminRole, 'A tenant as administrators read it: role secrets are never shown.', {
  provisioning,
  compute,
});
const tenantRoute = tenantResponse(
  SchemaId.TenantRoute,
  routeRole,
  'The routing view for gateways: everything needed to route and authenticate, role secrets included.',
  {
    clientCertificates: {
      type: 'object',
      properties: {
        ...record.clientCertificates.properties,
        issuerCaCertificate: { type: 'string', description: "The control plane's issuing CA (PEM), when it issues certificates." },
      },
    },
  },
);

const tenantList = {
  $id: SchemaId.TenantList,
  type: 'object',
  required: ['items', 'nextCursor'],
  properties: {
    items: { type: 'array', items: ref(SchemaId.TenantView) },
    nextCursor: { type: ['string', 'null'], description: 'Pass as ?cursor= for the next page; null on the last page.' },
  },
};

const errorBody = {
  $id: SchemaId.Error,
  type: 'object',
  required: ['code', 'message', 'details'],
  properties: {
    code: { type: 'string', pattern: '^TG_ERR_[A-Z_]+$', description: 'Stable; see the error table.' },
    message: { type: 'string' },
    details: {
      type: 'object',
      additionalProperties: true,
      description: 'For 400: { in, issues: [{ path (JSON pointer), message }] }.',
    },
  },
};

export const SHARED_SCHEMAS: readonly Schema[] = [tenantInput, tenantPatch, roleInput, tenantView, tenantRoute, tenantList, errorBody];

export const tenantIdParams = {
  type: 'object',
  required: ['id'],
  additionalProperties: false,
  properties: { id: { type: 'string', pattern: TENANT_ID_PATTERN } },
};

export const roleParams = {
  type: 'object',
  required: ['id', 'role'],
  additionalProperties: false,
  properties: { ...tenantIdParams.properties, role: postgresName },
};

export const MAX_PAGE_SIZE = 100;
export const DEFAULT_PAGE_SIZE = 50;

export const listQuery = {
  type: 'object',
  additionalProperties: false,
  properties: {
    limit: {
      type: 'string',
      pattern: '^(100|[1-9][0-9]?)$',
      description: `Page size, an integer from 1 to ${MAX_PAGE_SIZE}; default ${DEFAULT_PAGE_SIZE}.`,
    },
    cursor: { type: 'string', minLength: 1, maxLength: 200, description: 'nextCursor of the previous page.' },
  },
};

export const ifMatchHeaders = {
  type: 'object',
  properties: {
    'if-match': { type: 'string', description: 'Apply only at this version: the ETag of an earlier response, e.g. "12".' },
  },
};

/** The error responses a route documents, by status code. */
export function errorResponses(...codes: number[]): Record<number, Schema> {
  return Object.fromEntries(codes.map((code) => [code, ref(SchemaId.Error)]));
}

const { host, port, serverName, caCertificate } = backendSchema.properties;

/** POST /v1/clusters */
export const clusterInput = {
  type: 'object',
  additionalProperties: false,
  required: ['id', 'host', 'caCertificate', 'adminUser', 'adminCredential'],
  properties: {
    id: { type: 'string', pattern: TENANT_ID_PATTERN },
    host,
    port,
    serverName: { ...serverName, description: 'The name its server certificate must carry (verify-full); default host.' },
    caCertificate: { ...caCertificate, description: 'PEM CA of its server certificate; tenants on it get it as backend.caCertificate.' },
    adminUser: { ...postgresName, description: 'A role with CREATEROLE and CREATEDB (or a superuser).' },
    adminCredential: {
      type: 'string',
      pattern: CERTIFICATE_REF_PATTERN,
      description: 'Files in CONTROL_PLANE_SECRETS_DIR: <name>.crt and <name>.key (a client certificate) or <name>.password.',
    },
    clientCertificate: {
      type: 'string',
      pattern: CERTIFICATE_REF_PATTERN,
      description: "The gateways' client certificate for this cluster (a GATEWAY_SECRETS_DIR name); default the gateways' own.",
    },
    dataDirectory: {
      type: 'string',
      minLength: 1,
      maxLength: 4096,
      pattern: '^/',
      description:
        "CONTROL_PLANE_COMPUTE_DRIVER=local: its data directory on the control plane's machine, started and stopped with pg_ctl.",
    },
  },
} as const;

export const clusterView = {
  type: 'object',
  required: [
    'id',
    'host',
    'port',
    'caCertificate',
    'adminUser',
    'adminCredential',
    'serverVersion',
    'freeConnections',
    'checkedAt',
    'createdAt',
  ],
  properties: {
    ...clusterInput.properties,
    serverVersion: { type: 'string', description: 'server_version at the last successful check.' },
    freeConnections: { type: 'integer', description: 'max_connections minus reserved slots minus client sessions, at that check.' },
    checkedAt: { type: 'string', format: 'date-time' },
    createdAt: { type: 'string', format: 'date-time' },
    reachable: { type: 'boolean', description: 'GET /v1/clusters/:id only: whether the check made now succeeded.' },
    error: { ...jobError, description: 'Why the check made now failed.' },
  },
} as const;

export const clusterList = {
  type: 'object',
  required: ['items', 'nextCursor'],
  properties: {
    items: { type: 'array', items: clusterView },
    nextCursor: { type: ['string', 'null'], description: 'Pass as ?cursor= for the next page; null on the last page.' },
  },
} as const;

/** DELETE /v1/tenants/:id */
export const deleteTenantQuery = {
  type: 'object',
  additionalProperties: false,
  properties: {
    dropDatabase: {
      type: 'string',
      enum: ['true', 'false'],
      description: 'A tenant on a cluster: true drops its database and roles there once its sessions are ended; default false keeps them.',
    },
  },
} as const;

/** POST /v1/tenants/:id/roles/:role/certificates */
export const certificateRequest = {
  type: 'object',
  additionalProperties: false,
  required: ['csr'],
  properties: {
    csr: {
      type: 'string',
      minLength: 1,
      maxLength: 16_384,
      description: 'A PKCS #10 certificate signing request, PEM; the private key stays with the client.',
    },
    ttlSeconds: {
      type: 'integer',
      minimum: 60,
      maximum: 86_400,
      default: 3600,
      description: "Lifetime; at most the tenant's clientCertificates.maxTtlSeconds (default 3600).",
    },
  },
} as const;

export const issuedCertificate = {
  type: 'object',
  required: ['certificate', 'serialNumber', 'notAfter'],
  properties: {
    certificate: { type: 'string', description: 'PEM; CN is the role, a URI subjectAltName names the tenant.' },
    serialNumber: { type: 'string', description: 'Hex, as OpenSSL prints it.' },
    notAfter: { type: 'string', format: 'date-time' },
  },
} as const;

export const revokedCertificates = {
  type: 'object',
  required: ['notBefore'],
  properties: {
    notBefore: { type: 'string', format: 'date-time', description: 'Certificates valid from before this instant are refused.' },
  },
} as const;
