// The control plane's error table: every error a client sees has a stable TG_ERR_* code, an
// HTTP status and one JSON body shape, `{ code, message, details }`. Errors thrown by Fastify
// itself (body parsing, schema validation) and by libs/tenancy are translated here, in one
// place, so no response ever carries another shape, a stack trace or an internal message.
import createError from '@fastify/error';
import { TENANT_NOT_FOUND_CODE, TenantValidationError, type ValidationIssue } from '@tenantgate/tenancy';

export const ErrorCode = {
  Validation: 'TG_ERR_VALIDATION',
  MalformedBody: 'TG_ERR_MALFORMED_BODY',
  BadRequest: 'TG_ERR_BAD_REQUEST',
  Unauthorized: 'TG_ERR_UNAUTHORIZED',
  Forbidden: 'TG_ERR_FORBIDDEN',
  NotFound: 'TG_ERR_NOT_FOUND',
  /** A tenant that does not exist; gateways cache it as unknown (route-cache.ts). */
  TenantNotFound: TENANT_NOT_FOUND_CODE,
  TenantExists: 'TG_ERR_TENANT_EXISTS',
  VersionConflict: 'TG_ERR_VERSION_CONFLICT',
  BodyTooLarge: 'TG_ERR_BODY_TOO_LARGE',
  UnsupportedMediaType: 'TG_ERR_UNSUPPORTED_MEDIA_TYPE',
  NotReady: 'TG_ERR_NOT_READY',
  /** The gateways cannot be reached (they listen on Redis): sessions cannot be ended from here. */
  GatewaysUnreachable: 'TG_ERR_GATEWAYS_UNREACHABLE',
  /** POST .../certificates on a control plane without CONTROL_PLANE_CA_CERT and _KEY. */
  IssuingNotConfigured: 'TG_ERR_ISSUING_NOT_CONFIGURED',
  /** /v1/clusters on a control plane without CONTROL_PLANE_SECRETS_DIR. */
  ClustersNotConfigured: 'TG_ERR_CLUSTERS_NOT_CONFIGURED',
  ClusterNotFound: 'TG_ERR_CLUSTER_NOT_FOUND',
  ClusterExists: 'TG_ERR_CLUSTER_EXISTS',
  /** A cluster that tenants live on (or that has provisioning work left) cannot be deleted. */
  ClusterInUse: 'TG_ERR_CLUSTER_IN_USE',
  /** A provisioned tenant that is not active yet (or failed): its roles cannot be set. */
  TenantNotProvisioned: 'TG_ERR_TENANT_NOT_PROVISIONED',
  /** A wake for a tenant that is suspended, in maintenance or being provisioned. */
  TenantNotSleeping: 'TG_ERR_TENANT_NOT_SLEEPING',
  /** A wake with no compute driver: neither CONTROL_PLANE_COMPUTE_WEBHOOK nor the local driver. */
  ComputeNotConfigured: 'TG_ERR_COMPUTE_NOT_CONFIGURED',
  /** The compute driver failed: the webhook answered an error or not at all, or pg_ctl failed. */
  ComputeFailed: 'TG_ERR_COMPUTE_FAILED',
  /** The cluster cannot be reached: TCP, TLS (its certificate) or a timeout. */
  BackendUnreachable: 'TG_ERR_BACKEND_UNREACHABLE',
  /** The cluster refused the admin credential (or the credential files are missing). */
  BackendAuthFailed: 'TG_ERR_BACKEND_AUTH_FAILED',
  /** The cluster refused a statement (details.sqlstate) or holds a name that is not ours. */
  BackendRefused: 'TG_ERR_BACKEND_REFUSED',
  Internal: 'TG_ERR_INTERNAL',
} as const;
export type ErrorCode = (typeof ErrorCode)[keyof typeof ErrorCode];

export const IssuingNotConfiguredError = createError(
  ErrorCode.IssuingNotConfigured,
  'this control plane issues no client certificates: set CONTROL_PLANE_CA_CERT and CONTROL_PLANE_CA_KEY',
  501,
);
export const ValidationError = createError(ErrorCode.Validation, 'invalid %s: %s', 400);
export const MalformedBodyError = createError(ErrorCode.MalformedBody, 'the request body is not valid JSON', 400);
export const BadRequestError = createError(ErrorCode.BadRequest, 'bad request: %s', 400);
export const UnauthorizedError = createError(
  ErrorCode.Unauthorized,
  'a valid token is required: send "Authorization: Bearer <token>"',
  401,
);
export const ForbiddenError = createError(ErrorCode.Forbidden, 'this token may only read routes (GET /v1/routes/:id)', 403);
export const NotFoundError = createError(ErrorCode.NotFound, '%s', 404);
export const TenantNotFoundError = createError(ErrorCode.TenantNotFound, 'tenant "%s" not found', 404);
export const TenantExistsError = createError(ErrorCode.TenantExists, 'tenant "%s" already exists', 409);
export const VersionConflictError = createError(
  ErrorCode.VersionConflict,
  'tenant "%s" is at version %s, not the version %s given in If-Match',
  409,
);
export const BodyTooLargeError = createError(ErrorCode.BodyTooLarge, 'the request body is larger than %s bytes', 413);
export const UnsupportedMediaTypeError = createError(
  ErrorCode.UnsupportedMediaType,
  'the request body must be JSON (Content-Type: application/json)',
  415,
);
export const NotReadyError = createError(ErrorCode.NotReady, 'not ready: %s', 503);
export const GatewaysUnreachableError = createError(
  ErrorCode.GatewaysUnreachable,
  "the gateways cannot be reached to end sessions: %s; end them on each gateway's admin port (DELETE /sessions/:id)",
  503,
);
export const ClustersNotConfiguredError = createError(
  ErrorCode.ClustersNotConfigured,
  "this control plane provisions on no clusters: set CONTROL_PLANE_SECRETS_DIR to the directory of the clusters' admin credentials",
  501,
);
export const ClusterNotFoundError = createError(ErrorCode.ClusterNotFound, 'cluster "%s" not found', 404);
export const ClusterExistsError = createError(ErrorCode.ClusterExists, 'cluster "%s" already exists', 409);
export const ClusterInUseError = createError(ErrorCode.ClusterInUse, 'cluster "%s" is in use: %s', 409);
export const TenantNotProvisionedError = createError(ErrorCode.TenantNotProvisioned, 'tenant "%s" is %s on its cluster: %s', 409);
export const TenantNotSleepingError = createError(
  ErrorCode.TenantNotSleeping,
  'tenant "%s" is not sleeping but %s: there is nothing to wake',
  409,
);
export const ComputeNotConfiguredError = createError(
  ErrorCode.ComputeNotConfigured,
  'this control plane cannot wake tenants: set CONTROL_PLANE_COMPUTE_WEBHOOK (and _SECRET), or CONTROL_PLANE_COMPUTE_DRIVER=local',
  501,
);
export const ComputeFailedError = createError(ErrorCode.ComputeFailed, 'the compute of tenant "%s" could not be %s: %s', 502);
export const BackendUnreachableError = createError(ErrorCode.BackendUnreachable, 'cannot reach cluster "%s": %s', 502);
export const BackendAuthFailedError = createError(ErrorCode.BackendAuthFailed, 'cluster "%s" refused the admin credential: %s', 502);
export const BackendRefusedError = createError(ErrorCode.BackendRefused, 'cluster "%s" refused: %s', 502);
export const InternalError = createError(ErrorCode.Internal, 'internal error', 500);

/** Not an API error: start-up stopped, and main.ts prints the message as one line. */
export const StartupErrorCode = 'TG_ERR_STARTUP';

/**
 * Start-up cannot go on because of what one variable says: the database it names cannot be
 * reached, the address it gives is in use. The message is `VARIABLE: reason`.
 */
export class StartupError extends Error {
  readonly code = StartupErrorCode;
  readonly variable: string;
  constructor(variable: string, reason: string, options?: ErrorOptions) {
    super(`${variable}: ${reason}`, options);
    this.name = 'StartupError';
    this.variable = variable;
  }
}

/** Where a request's failing field is: the JSON pointer of each issue is relative to it. */
export type RequestPart = 'body' | 'params' | 'querystring' | 'headers';

export interface ErrorBody {
  code: string;
  message: string;
  details: Record<string, unknown>;
}

export interface ErrorReply {
  statusCode: number;
  body: ErrorBody;
  /** A fault of the control plane (5xx): log it with its stack; never show it to the client. */
  internal: boolean;
}

/** One of our own errors, with what goes into `details`. */
export function withDetails<E extends Error>(error: E, details: Record<string, unknown>): E {
  return Object.assign(error, { details });
}

export function notFound(what: string): Error {
  return new NotFoundError(what);
}

export function tenantNotFound(id: string): Error {
  return new TenantNotFoundError(id);
}

export function validationError(part: RequestPart, issues: readonly ValidationIssue[]): Error {
  const summary = issues.map((i) => `${i.path || '/'} ${i.message}`).join('; ');
  return withDetails(new ValidationError(part, summary), { in: part, issues });
}

const OWN_CODES = new Set<string>(Object.values(ErrorCode));

/** Translates anything a handler, a hook or Fastify threw into the reply the client gets. */
export function toErrorReply(error: unknown, bodyLimit: number): ErrorReply {
  const translated = translate(error, bodyLimit);
  const { code, message, statusCode } = translated as Error & { code: string; statusCode: number };
  const details = (translated as { details?: Record<string, unknown> }).details ?? {};
  return { statusCode, body: { code, message, details }, internal: statusCode >= 500 };
}

function translate(error: unknown, bodyLimit: number): Error {
  if (error instanceof TenantValidationError) return validationError('body', error.issues);
  if (!(error instanceof Error)) return new InternalError();
  const { code, statusCode } = error as { code?: string; statusCode?: number };
  if (code !== undefined && OWN_CODES.has(code) && statusCode !== undefined) return error;
  const validation = (error as { validation?: unknown }).validation;
  if (Array.isArray(validation)) {
    const part = ((error as { validationContext?: RequestPart }).validationContext ?? 'body') as RequestPart;
    return validationError(part, ajvIssues(validation));
  }
  switch (code) {
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return withDetails(new BodyTooLargeError(bodyLimit), { limit: bodyLimit });
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
      return new UnsupportedMediaTypeError();
    case 'FST_ERR_CTP_INVALID_JSON_BODY':
    case 'FST_ERR_CTP_EMPTY_JSON_BODY':
      return new MalformedBodyError();
  }
  // Fastify's JSON parser reports bad JSON as a SyntaxError, prototype poisoning with a 400.
  if (error instanceof SyntaxError && statusCode === 400) return new MalformedBodyError();
  if (statusCode !== undefined && statusCode >= 400 && statusCode < 500) return new BadRequestError(error.message);
  return new InternalError();
}

/** The subset of an Ajv error object Fastify reports in `error.validation`. */
interface AjvIssue {
  keyword: string;
  instancePath: string;
  params: Record<string, unknown>;
  message?: string;
}

/**
 * Ajv errors as issues. The branches of a failed oneOf each report why they failed ("password
 * is required", "scramSecret is required"); the oneOf issue itself says it better, alone.
 */
export function ajvIssues(errors: readonly unknown[]): ValidationIssue[] {
  const branch = /\/oneOf\/\d+\//;
  const kept = errors.filter((e) => !branch.test((e as { schemaPath?: string }).schemaPath ?? ''));
  return kept.map(ajvIssue);
}

/** An Ajv error as a JSON pointer to the failing field and a message about it. */
export function ajvIssue(raw: unknown): ValidationIssue {
  const e = raw as AjvIssue;
  switch (e.keyword) {
    case 'required':
      return { path: `${e.instancePath}/${String(e.params.missingProperty)}`, message: 'is required' };
    case 'additionalProperties':
      return { path: `${e.instancePath}/${String(e.params.additionalProperty)}`, message: 'is not a known field' };
    // The one oneOf of the API schemas: a role's password or SCRAM secret.
    case 'oneOf':
      return { path: e.instancePath, message: 'give exactly one of "password" and "scramSecret"' };
    case 'enum':
      return { path: e.instancePath, message: `must be one of ${(e.params.allowedValues as unknown[]).join(', ')}` };
    default:
      return { path: e.instancePath, message: e.message ?? 'is invalid' };
  }
}
