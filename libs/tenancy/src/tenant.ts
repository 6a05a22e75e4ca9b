// The tenant model: types for the tenant record, validation against the JSON Schema
// (with defaults applied), and the semantic checks a schema cannot express.
import { X509Certificate } from 'node:crypto';
import { Ajv, type ErrorObject } from 'ajv';
import { tenantSchema, tenantsFileSchema } from './schema.ts';
import { parseCidr } from './cidr.ts';

export const TenantStatus = {
  Active: 'active',
  Suspended: 'suspended',
  Maintenance: 'maintenance',
  /** Its compute is stopped: a client that logs in at the edge makes the control plane wake it. */
  Sleeping: 'sleeping',
} as const;
export type TenantStatus = (typeof TenantStatus)[keyof typeof TenantStatus];

/**
 * How a client proves itself at the edge: `gateway` (SCRAM against the role's secret),
 * `passthrough` (the backend checks the client's password), `certificate` (a client certificate
 * chaining to the tenant's clientCaCertificate and naming the role), `certificate+scram` (both).
 */
export const AuthMode = {
  Gateway: 'gateway',
  Passthrough: 'passthrough',
  Certificate: 'certificate',
  CertificateScram: 'certificate+scram',
} as const;
export type AuthMode = (typeof AuthMode)[keyof typeof AuthMode];

/**
 * Which replication connections the tenant's clients may open (a startup packet with
 * `replication`): `logical` allows `replication=database`; `physical` also allows
 * `replication=true`, which streams the whole backend cluster, not one database.
 */
export const ReplicationMode = { None: 'none', Logical: 'logical', Physical: 'physical' } as const;
export type ReplicationMode = (typeof ReplicationMode)[keyof typeof ReplicationMode];

export interface TenantBackend {
  /** The control plane's cluster the tenant was provisioned on; the address below is the cluster's. */
  cluster?: string;
  host: string;
  port: number;
  serverName?: string;
  database?: string;
  caCertificate?: string;
  clientCertificate?: string;
  /** The backend leg's TLS floor; absent: the gateway's (GATEWAY_BACKEND_TLS_MIN_VERSION). */
  tls?: { minVersion?: 'TLSv1.2' | 'TLSv1.3' };
}

/** A role as stored: the password, if one was given, is already a SCRAM secret. */
export interface TenantRole {
  name: string;
  scramSecret: string;
  backendUser?: string;
  /** The role's own way in, instead of the tenant's authMode (not for passthrough tenants). */
  authMode?: RoleAuthMode;
}

/** What a role may set as its own authMode: the modes the edge checks itself. */
export type RoleAuthMode = Exclude<AuthMode, 'passthrough'>;

/** A role as a client of the API or a static file writes it. */
export interface TenantRoleInput {
  name: string;
  scramSecret?: string;
  password?: string;
  backendUser?: string;
  authMode?: RoleAuthMode;
}

/** How a client logging in as `role` proves itself: the role's own mode, else the tenant's. */
export function authModeOf(tenant: Pick<Tenant, 'authMode'>, role: Pick<TenantRole, 'authMode'> | undefined): AuthMode {
  return tenant.authMode === AuthMode.Passthrough ? tenant.authMode : (role?.authMode ?? tenant.authMode);
}

export interface TenantLimits {
  maxConnections: number;
  connectsPerSecond: number;
}

/** Client certificates the control plane issues for the tenant's roles. */
export interface ClientCertificateSettings {
  /** Longest lifetime a certificate may be issued for (default 3600). */
  maxTtlSeconds?: number;
  /** Certificates valid from before this instant (ISO 8601) are refused: set by a revoke. */
  notBefore?: string;
  /** In the routing view only: the control plane's issuing CA, which gateways trust for the tenant. */
  issuerCaCertificate?: string;
}

/** The subjectAltName URI that binds a control-plane-issued certificate to its tenant. */
export function tenantCertificateUri(tenantId: string): string {
  return `urn:tenantgate:tenant:${tenantId}`;
}

interface TenantFields<Role> {
  id: string;
  status: TenantStatus;
  backend: TenantBackend;
  authMode: AuthMode;
  /** CA certificates (PEM) that client certificates must chain to, for the certificate modes. */
  clientCaCertificate?: string;
  clientCertificates?: ClientCertificateSettings;
  userRewrite: { template?: string };
  roles: Role[];
  allowedCidrs: string[];
  limits: TenantLimits;
  replication: ReplicationMode;
  /** Put to sleep once no gateway has held a session of it for this long; absent: never. */
  idleSuspendSeconds?: number;
}

export type TenantInput = TenantFields<TenantRoleInput>;
export type Tenant = TenantFields<TenantRole>;

/** The routing view the control plane serves to gateways. */
export interface TenantRoute extends Tenant {
  version: number;
  createdAt: string;
  updatedAt: string;
}

export interface ValidationIssue {
  /** JSON pointer of the failing field, e.g. `/backend/port`. */
  path: string;
  message: string;
}

export class TenantValidationError extends Error {
  readonly code = 'TG_ERR_TENANT_INVALID';
  readonly issues: ValidationIssue[];
  constructor(issues: ValidationIssue[], prefix = '') {
    super(issues.map((i) => `${prefix}${i.path || '/'}: ${i.message}`).join('; '));
    this.name = 'TenantValidationError';
    this.issues = issues;
  }
}

const ajv = new Ajv({ allErrors: true, useDefaults: true, strict: true, strictRequired: false });
const validateTenantShape = ajv.compile(tenantSchema);
const validateFileShape = ajv.compile(tenantsFileSchema);

const TEMPLATE_PLACEHOLDER = /\{([^}]*)\}/g;
const KNOWN_PLACEHOLDERS = new Set(['user', 'tenant']);
/** PostgreSQL's NAMEDATALEN - 1: longer names are truncated by the server, so two roles could meet. */
const MAX_NAME_BYTES = 63;
/**
 * SCRAM iterations the gateway will run for each login: PostgreSQL allows up to 2^31 - 1, but
 * the edge computes the proof itself, so a record must not make one login cost seconds of CPU.
 */
export const MAX_SCRAM_ITERATIONS = 100_000;
const PEM_CERTIFICATE = /-----BEGIN CERTIFICATE-----[^-]+-----END CERTIFICATE-----/g;

/**
 * Validates a tenant record and returns a copy with defaults applied.
 * @throws TenantValidationError naming every failing field.
 */
export function validateTenantInput(value: unknown, options: ValidationOptions = {}): TenantInput {
  const copy: unknown = structuredClone(value);
  if (!validateTenantShape(copy)) throw new TenantValidationError(schemaIssues(validateTenantShape.errors));
  const tenant = copy as TenantInput;
  const issues = semanticIssues(tenant, options);
  if (issues.length > 0) throw new TenantValidationError(issues);
  return tenant;
}

/** Validates the `{ "tenants": [...] }` document of a static tenants file. */
export function validateTenantsFile(value: unknown): TenantInput[] {
  const copy: unknown = structuredClone(value);
  if (!validateFileShape(copy)) throw new TenantValidationError(schemaIssues(validateFileShape.errors));
  const tenants = (copy as { tenants: TenantInput[] }).tenants;
  const issues: ValidationIssue[] = [];
  const seen = new Set<string>();
  tenants.forEach((tenant, i) => {
    if (seen.has(tenant.id)) issues.push({ path: `/tenants/${i}/id`, message: `duplicate tenant id "${tenant.id}"` });
    seen.add(tenant.id);
    for (const issue of semanticIssues(tenant)) issues.push({ ...issue, path: `/tenants/${i}${issue.path}` });
    // Only the control plane provisions on clusters: a file names the backend itself.
    if (tenant.backend.cluster !== undefined) {
      issues.push({ path: `/tenants/${i}/backend/cluster`, message: 'is provisioned by the control plane; a tenants file gives host' });
    } else if (tenant.backend.host === undefined) {
      issues.push({ path: `/tenants/${i}/backend/host`, message: 'is required' });
    }
  });
  if (issues.length > 0) throw new TenantValidationError(issues);
  return tenants;
}

/**
 * Turns every role password into a SCRAM secret, so that no password is kept past loading.
 * The hashing function is injected (libs/wire's SCRAM), keeping this library free of it.
 */
export async function materializeTenant(input: TenantInput, hashPassword: (password: string) => Promise<string> | string): Promise<Tenant> {
  const roles = await Promise.all(
    input.roles.map(async ({ password, scramSecret, ...rest }) => ({
      ...rest,
      scramSecret: scramSecret ?? (await hashPassword(password as string)),
    })),
  );
  return { ...input, roles };
}

function schemaIssues(errors: ErrorObject[] | null | undefined): ValidationIssue[] {
  // The branches of a failed anyOf each say what they missed; the anyOf issue says it better, alone.
  return (errors ?? [])
    .filter((e) => !e.schemaPath.includes('/anyOf/'))
    .map((e) => ({ path: schemaIssuePath(e), message: schemaIssueMessage(e) }));
}

function schemaIssuePath(e: ErrorObject): string {
  if (e.keyword === 'required') return `${e.instancePath}/${String(e.params.missingProperty)}`;
  if (e.keyword === 'additionalProperties') return `${e.instancePath}/${String(e.params.additionalProperty)}`;
  return e.instancePath;
}

function schemaIssueMessage(e: ErrorObject): string {
  switch (e.keyword) {
    case 'required':
      return 'is required';
    case 'additionalProperties':
      return 'is not a known field';
    case 'oneOf':
      return 'give exactly one of "password" and "scramSecret"';
    // The one anyOf of the record: where the backend is.
    case 'anyOf':
      return 'give "host" (an address) or "cluster" (a cluster registered with the control plane)';
    case 'pattern':
      return patternMessage(e.instancePath) ?? `${e.message ?? 'is invalid'}`;
    case 'enum':
      return `must be one of ${(e.params.allowedValues as string[]).join(', ')}`;
    default:
      return e.message ?? 'is invalid';
  }
}

function patternMessage(path: string): string | undefined {
  if (path.endsWith('/id')) return 'must be 1 to 63 characters of a-z, 0-9 and "-"';
  if (path.endsWith('/scramSecret')) return 'must be a SCRAM-SHA-256 secret in pg_authid format';
  if (path.endsWith('/caCertificate') || path.endsWith('/clientCaCertificate')) return 'must be a PEM certificate';
  if (path.endsWith('/clientCertificate')) return 'must be a file name under the secrets directory';
  return undefined;
}

/**
 * Why a role may not set `authMode` in this tenant, or undefined when it may: a passthrough tenant
 * leaves every login to its backend, and a certificate mode needs a CA to check certificates by.
 */
export function roleAuthModeProblem(
  tenant: Pick<TenantInput, 'authMode' | 'clientCaCertificate'>,
  authMode: RoleAuthMode,
  options: ValidationOptions = {},
): string | undefined {
  if (tenant.authMode === AuthMode.Passthrough) return 'cannot be set in a passthrough tenant: the backend checks every login';
  if (usesCertificates(authMode) && tenant.clientCaCertificate === undefined && options.issuesCertificates !== true) {
    return `"${authMode}" needs the tenant's clientCaCertificate`;
  }
  return undefined;
}

export interface ValidationOptions {
  /** The control plane issues client certificates: the certificate modes need no clientCaCertificate. */
  readonly issuesCertificates?: boolean;
}

function semanticIssues(tenant: TenantInput, options: ValidationOptions = {}): ValidationIssue[] {
  const issues: ValidationIssue[] = [];
  tenant.allowedCidrs.forEach((cidr, i) => {
    if (parseCidr(cidr) === undefined) issues.push({ path: `/allowedCidrs/${i}`, message: `"${cidr}" is not a CIDR block` });
  });
  const names = new Set<string>();
  tenant.roles.forEach((role, i) => {
    if (names.has(role.name)) issues.push({ path: `/roles/${i}/name`, message: `duplicate role "${role.name}"` });
    names.add(role.name);
    checkNameBytes(issues, `/roles/${i}/name`, role.name);
    checkNameBytes(issues, `/roles/${i}/backendUser`, role.backendUser);
    if (role.scramSecret !== undefined) checkIterations(issues, `/roles/${i}/scramSecret`, role.scramSecret);
  });
  checkNameBytes(issues, '/backend/database', tenant.backend.database);
  if (tenant.backend.caCertificate !== undefined) checkCaCertificate(issues, '/backend/caCertificate', tenant.backend.caCertificate);
  if (tenant.clientCaCertificate !== undefined) checkCaCertificate(issues, '/clientCaCertificate', tenant.clientCaCertificate);
  tenant.roles.forEach((role, i) => {
    const problem = role.authMode === undefined ? undefined : roleAuthModeProblem(tenant, role.authMode, options);
    if (problem !== undefined) issues.push({ path: `/roles/${i}/authMode`, message: problem });
  });
  const notBefore = tenant.clientCertificates?.notBefore;
  if (notBefore !== undefined && Number.isNaN(Date.parse(notBefore))) {
    issues.push({ path: '/clientCertificates/notBefore', message: 'must be an ISO 8601 instant, e.g. 2026-01-01T00:00:00.000Z' });
  }
  if (usesCertificates(tenant.authMode) && tenant.clientCaCertificate === undefined && options.issuesCertificates !== true) {
    issues.push({
      path: '/clientCaCertificate',
      message: `is required with authMode "${tenant.authMode}": client certificates must chain to it`,
    });
  }
  if (tenant.authMode === AuthMode.Passthrough && tenant.backend.database === undefined) {
    // Otherwise the client's `database` reaches a shared cluster as sent: any database there.
    issues.push({ path: '/backend/database', message: 'is required with authMode "passthrough", so its users reach only this database' });
  }
  const template = tenant.userRewrite.template;
  if (template !== undefined) {
    const used = new Set([...template.matchAll(TEMPLATE_PLACEHOLDER)].map(([, name]) => name));
    for (const name of used) {
      if (!KNOWN_PLACEHOLDERS.has(name!)) {
        issues.push({ path: '/userRewrite/template', message: `unknown placeholder {${name}}; use {user} or {tenant}` });
      }
    }
    if (!used.has('user')) {
      issues.push({ path: '/userRewrite/template', message: 'must contain {user}, or every role would log in as one backend user' });
    }
  }
  return issues;
}

function checkNameBytes(issues: ValidationIssue[], path: string, name: string | undefined): void {
  if (name !== undefined && Buffer.byteLength(name, 'utf8') > MAX_NAME_BYTES) {
    issues.push({ path, message: `must be at most ${MAX_NAME_BYTES} bytes in UTF-8, as PostgreSQL names are` });
  }
}

function checkIterations(issues: ValidationIssue[], path: string, secret: string): void {
  const iterations = Number(secret.slice(secret.indexOf('$') + 1, secret.indexOf(':')));
  if (!(iterations >= 1 && iterations <= MAX_SCRAM_ITERATIONS)) {
    issues.push({ path, message: `must use from 1 to ${MAX_SCRAM_ITERATIONS} SCRAM iterations` });
  }
}

/** Whether the mode asks the client for a certificate. */
export function usesCertificates(mode: AuthMode): boolean {
  return mode === AuthMode.Certificate || mode === AuthMode.CertificateScram;
}

/** Every PEM block must parse, and one be a CA: the peer's certificate is checked against it. */
function checkCaCertificate(issues: ValidationIssue[], path: string, pem: string): void {
  const blocks = pem.match(PEM_CERTIFICATE) ?? [];
  let certificates: X509Certificate[];
  try {
    certificates = blocks.map((block) => new X509Certificate(block));
  } catch {
    certificates = [];
  }
  if (certificates.length === 0) {
    issues.push({ path, message: 'must be PEM certificates that parse' });
  } else if (!certificates.some((certificate) => certificate.ca)) {
    issues.push({ path, message: 'must hold a CA certificate (basicConstraints CA:TRUE)' });
  }
}
