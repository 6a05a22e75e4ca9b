// Errors raised by the tenant resolver. Each has a stable `code`. Only
// TenantDirectoryUnavailableError and TenantResolverClosedError leave resolve(); the control
// plane errors travel as its `cause` (and through the observer), for the logs.

export const ResolverErrorCode = {
  DirectoryUnreachable: 'TG_ERR_TENANT_DIRECTORY_UNREACHABLE',
  ResolverClosed: 'TG_ERR_TENANT_RESOLVER_CLOSED',
  ResolverConfig: 'TG_ERR_TENANT_RESOLVER_CONFIG',
  ControlPlaneTransport: 'TG_ERR_CONTROL_PLANE_TRANSPORT',
  ControlPlaneStatus: 'TG_ERR_CONTROL_PLANE_STATUS',
  ControlPlaneResponse: 'TG_ERR_CONTROL_PLANE_RESPONSE',
  ControlPlaneCircuitOpen: 'TG_ERR_CONTROL_PLANE_CIRCUIT_OPEN',
  ControlPlaneSlow: 'TG_ERR_CONTROL_PLANE_SLOW',
  CachedRouteInvalid: 'TG_ERR_CACHED_ROUTE_INVALID',
  InvalidationInvalid: 'TG_ERR_INVALIDATION_INVALID',
} as const;
export type ResolverErrorCode = (typeof ResolverErrorCode)[keyof typeof ResolverErrorCode];

export class ResolverError extends Error {
  readonly code: ResolverErrorCode;
  constructor(code: ResolverErrorCode, message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = new.target.name;
    this.code = code;
  }
}

/**
 * Neither Redis nor the control plane could answer, and no stale route may stand in. The message
 * is fit for a client (no address); `cause` says what failed, for the log.
 */
export class TenantDirectoryUnavailableError extends ResolverError {
  constructor(options?: ErrorOptions) {
    super(ResolverErrorCode.DirectoryUnreachable, 'the tenant directory is unreachable', options);
  }
}

/** resolve() or ready() after (or during) close(). */
export class TenantResolverClosedError extends ResolverError {
  constructor() {
    super(ResolverErrorCode.ResolverClosed, 'the tenant resolver is closed');
  }
}

/** An option of createTenantResolver that cannot work (names the option, never the token). */
export class TenantResolverConfigError extends ResolverError {
  constructor(message: string) {
    super(ResolverErrorCode.ResolverConfig, message);
  }
}

/** Base of the failures of one control plane request. */
export class ControlPlaneError extends ResolverError {}

/** No HTTP response: refused, reset, timed out. The only kind that is retried. */
export class ControlPlaneTransportError extends ControlPlaneError {
  constructor(message: string, options?: ErrorOptions) {
    super(ResolverErrorCode.ControlPlaneTransport, message, options);
  }
}

/** An HTTP status that is neither a route nor an unknown tenant (401, 403, 5xx, ...). */
export class ControlPlaneStatusError extends ControlPlaneError {
  readonly statusCode: number;
  constructor(statusCode: number, message: string) {
    super(ResolverErrorCode.ControlPlaneStatus, message);
    this.statusCode = statusCode;
  }
}

/** A response that is not what the contract promises: bad JSON, wrong id, bad version, too big. */
export class ControlPlaneResponseError extends ControlPlaneError {
  constructor(message: string, options?: ErrorOptions) {
    super(ResolverErrorCode.ControlPlaneResponse, message, options);
  }
}

/** No request was sent: the control plane failed too often in a row (circuit-breaker.ts). */
export class ControlPlaneCircuitOpenError extends ControlPlaneError {
  constructor() {
    super(ResolverErrorCode.ControlPlaneCircuitOpen, 'the control plane failed repeatedly; no request is sent for a while');
  }
}

/** The refresh of an expired route did not answer in time: the expired route was served meanwhile. */
export class ControlPlaneSlowError extends ControlPlaneError {
  constructor(deadlineMs: number) {
    super(ResolverErrorCode.ControlPlaneSlow, `no fresh route within ${deadlineMs} ms; refreshing in the background`);
  }
}

/** A value under a route key in Redis that does not decode: treated as a Redis failure. */
export class CachedRouteInvalidError extends ResolverError {
  constructor(message: string, options?: ErrorOptions) {
    super(ResolverErrorCode.CachedRouteInvalid, message, options);
  }
}

/** A message on the invalidation channel that is not an invalidation (route-cache.ts format). */
export class InvalidationMessageError extends ResolverError {
  constructor() {
    super(ResolverErrorCode.InvalidationInvalid, 'a message on the invalidation channel is not an invalidation');
  }
}
