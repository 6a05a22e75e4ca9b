// Checks a routing view (GET /v1/routes/:id, or a value cached from it) before a gateway trusts
// it. Strict on what the gateway reads (id, version, backend address, roles, CIDRs, limits),
// lenient on fields it does not know, so a newer control plane can add some without breaking
// older gateways. Defaults are not applied: the control plane serves complete records.
import { Ajv, type ErrorObject } from 'ajv';
import { SCRAM_SECRET_PATTERN, TENANT_ID_PATTERN } from './schema.ts';
import { AuthMode, ReplicationMode, TenantStatus, type TenantRoute } from './tenant.ts';
import { parseCidr } from './cidr.ts';

const text = { type: 'string', minLength: 1 } as const;
const count = { type: 'integer', minimum: 0 } as const;

const storedRoleSchema = {
  type: 'object',
  required: ['name', 'scramSecret'],
  properties: {
    name: text,
    scramSecret: { type: 'string', pattern: SCRAM_SECRET_PATTERN },
    backendUser: text,
    authMode: { type: 'string', enum: ['gateway', 'certificate', 'certificate+scram'] },
  },
} as const;

export const tenantRouteSchema = {
  type: 'object',
  required: ['id', 'status', 'backend', 'authMode', 'userRewrite', 'roles', 'allowedCidrs', 'limits', 'version', 'createdAt', 'updatedAt'],
  properties: {
    id: { type: 'string', pattern: TENANT_ID_PATTERN },
    status: { type: 'string', enum: Object.values(TenantStatus) },
    backend: {
      type: 'object',
      required: ['host', 'port'],
      properties: {
        host: text,
        port: { type: 'integer', minimum: 1, maximum: 65535 },
        serverName: text,
        database: text,
        caCertificate: text,
        clientCertificate: text,
        tls: { type: 'object', properties: { minVersion: { type: 'string', enum: ['TLSv1.2', 'TLSv1.3'] } } },
      },
    },
    authMode: { type: 'string', enum: Object.values(AuthMode) },
    clientCaCertificate: text,
    clientCertificates: { type: 'object', properties: { notBefore: text, issuerCaCertificate: text } },
    userRewrite: { type: 'object', properties: { template: text } },
    roles: { type: 'array', items: storedRoleSchema },
    allowedCidrs: { type: 'array', items: { type: 'string' } },
    limits: {
      type: 'object',
      required: ['maxConnections', 'connectsPerSecond'],
      properties: { maxConnections: count, connectsPerSecond: count },
    },
    // Optional: a route from a control plane older than the field allows no replication.
    replication: { type: 'string', enum: Object.values(ReplicationMode) },
    version: { type: 'integer', minimum: 1 },
    createdAt: text,
    updatedAt: text,
  },
} as const;

const ajv = new Ajv({ allErrors: false, strict: true });
const validateShape = ajv.compile(tenantRouteSchema);

/**
 * Returns `value` as a TenantRoute, deep-frozen (it is shared by every caller of the resolver),
 * or the first reason it is not one. Reasons name fields, never values (they hold secrets).
 */
export function checkTenantRoute(value: unknown, tenantId: string): { route: TenantRoute } | { problem: string } {
  if (!validateShape(value)) return { problem: describe(validateShape.errors) };
  const route = value as unknown as TenantRoute;
  if (route.id !== tenantId) return { problem: `/id is "${route.id}", not the tenant asked for` };
  if (!Number.isSafeInteger(route.version)) return { problem: '/version is not a safe integer' };
  const badCidr = route.allowedCidrs.findIndex((cidr) => parseCidr(cidr) === undefined);
  if (badCidr !== -1) return { problem: `/allowedCidrs/${badCidr} is not a CIDR block` };
  route.replication ??= ReplicationMode.None;
  return { route: deepFreeze(route) };
}

function describe(errors: ErrorObject[] | null | undefined): string {
  const first = errors?.[0];
  if (first === undefined) return 'not a tenant route';
  if (first.keyword === 'required') return `${first.instancePath}/${String(first.params.missingProperty)} is required`;
  return `${first.instancePath || '/'} ${first.message ?? 'is invalid'}`;
}

function deepFreeze<T>(value: T): T {
  if (typeof value === 'object' && value !== null && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const child of Object.values(value)) deepFreeze(child);
  }
  return value;
}
