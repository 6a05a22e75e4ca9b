// Every error class of the gateway, with its stable `TG_ERR_*` code (docs/architecture.md,
// "Errors"). An error that reaches a client carries a SQLSTATE of libs/wire's table and a message
// for the person holding the connection string; `logDetail`, where present, carries what an
// operator needs (addresses, names) and is never sent.
// @see https://www.postgresql.org/docs/current/errcodes-appendix.html
import { buildErrorResponse, SqlState, type NoticeFields } from '@tenantgate/wire';
import type { ValidationIssue } from '@tenantgate/tenancy';
import type { ConnectionOutcome } from './telemetry/index.ts';

export const ErrorCode = {
  Refused: 'TG_ERR_REFUSED',
  Handshake: 'TG_ERR_HANDSHAKE',
  EdgeAuth: 'TG_ERR_EDGE_AUTH',
  ProxyHeader: 'TG_ERR_PROXY_HEADER',
  TlsConfig: 'TG_ERR_TLS_CONFIG',
  Secrets: 'TG_ERR_SECRETS',
  TenantsFile: 'TG_ERR_TENANTS_FILE',
  TenantDirectoryUnreachable: 'TG_ERR_TENANT_DIRECTORY_UNREACHABLE',
  GatewaySetup: 'TG_ERR_GATEWAY_SETUP',
  Startup: 'TG_ERR_STARTUP',
} as const;
export type ErrorCode = (typeof ErrorCode)[keyof typeof ErrorCode];

// ---------------------------------------------------------------------------------------------
// The client leg, before the splice

export interface RefusalOptions extends ErrorOptions {
  readonly detail?: string;
  readonly hint?: string;
}

/** A decision to turn a client away, with what the client is told. */
export class Refusal extends Error {
  readonly code = ErrorCode.Refused;
  readonly sqlState: string;
  readonly detail: string | undefined;
  readonly hint: string | undefined;

  constructor(sqlState: SqlState, message: string, options: RefusalOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'Refusal';
    this.sqlState = sqlState;
    this.detail = options.detail;
    this.hint = options.hint;
  }

  /** The FATAL ErrorResponse the client receives. */
  toErrorResponse(): Buffer {
    return buildErrorResponse({
      severity: 'FATAL',
      code: this.sqlState,
      message: this.message,
      ...(this.detail === undefined ? {} : { detail: this.detail }),
      ...(this.hint === undefined ? {} : { hint: this.hint }),
    });
  }
}

/** Anything that knows its SQLSTATE and the FATAL it sends: a Refusal, a BackendError. */
export interface RefusalLike {
  readonly sqlState: string;
  toErrorResponse(): Buffer;
}

/** Why a handshake ended without a result; the client has been told (refusal) or closed. */
export class HandshakeError extends Error {
  readonly code = ErrorCode.Handshake;
  readonly outcome: ConnectionOutcome;
  /** What the client was sent; undefined when it was closed without a word. */
  readonly refusal: Refusal | undefined;
  constructor(outcome: ConnectionOutcome, message: string, options: ErrorOptions & { refusal?: Refusal } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'HandshakeError';
    this.outcome = outcome;
    this.refusal = options.refusal;
  }
}

/**
 * Why authentication ended without a result. The client has been sent `refusal` (when defined)
 * and the socket is closing. The message is for the gateway's log and may say what the client
 * is not told (unknown role versus wrong password); it never holds a secret.
 */
export class EdgeAuthError extends Error {
  readonly code = ErrorCode.EdgeAuth;
  readonly outcome: ConnectionOutcome;
  readonly refusal: Refusal | undefined;
  constructor(outcome: ConnectionOutcome, message: string, options: ErrorOptions & { refusal?: Refusal } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'EdgeAuthError';
    this.outcome = outcome;
    this.refusal = options.refusal;
  }
}

export const ProxyHeaderFailure = {
  /** It starts like a header but breaks the spec (or our length cap). */
  Malformed: 'malformed',
  /** Mode `required`, and the connection started with something else. */
  Missing: 'missing',
  Timeout: 'timeout',
  /** The peer closed or reset the connection before the header was complete. */
  Closed: 'closed',
  /** A header from a peer outside GATEWAY_PROXY_TRUSTED_CIDRS: it may not say who the client is. */
  Untrusted: 'untrusted',
} as const;

export type ProxyHeaderFailure = (typeof ProxyHeaderFailure)[keyof typeof ProxyHeaderFailure];

/** Why a connection was closed before or while reading its PROXY header. The peer is told nothing. */
export class ProxyHeaderError extends Error {
  readonly code = ErrorCode.ProxyHeader;
  readonly failure: ProxyHeaderFailure;
  constructor(failure: ProxyHeaderFailure, message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = 'ProxyHeaderError';
    this.failure = failure;
  }
}

/** An edge certificate or key that cannot be loaded. */
export class TlsConfigError extends Error {
  readonly code = ErrorCode.TlsConfig;
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = 'TlsConfigError';
  }
}

/** Key material the gateway cannot read: a PEM file, a tenant's client certificate. */
export class SecretsError extends Error {
  readonly code = ErrorCode.Secrets;
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = 'SecretsError';
  }
}

/** A tenants file that cannot be read, is not JSON, or is not a valid tenants file. */
export class TenantsFileError extends Error {
  readonly code = ErrorCode.TenantsFile;
  readonly path: string;
  /** Every failing field, when the file is JSON but not a valid tenants file. */
  readonly issues: readonly ValidationIssue[];

  constructor(path: string, message: string, options: ErrorOptions & { issues?: readonly ValidationIssue[] } = {}) {
    super(`tenants file ${path}: ${message}`, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'TenantsFileError';
    this.path = path;
    this.issues = options.issues ?? [];
  }
}

/**
 * The directory could not answer (the control plane is down or slow, with nothing cached). What
 * the client is told names no address; `logDetail` carries what an operator needs.
 */
export class TenantDirectoryUnreachableError extends Error {
  readonly code = ErrorCode.TenantDirectoryUnreachable;
  readonly sqlState = SqlState.UnableToConnect;
  readonly logDetail: string;
  /**
   * The gateway's variable at fault when the control plane refuses its requests (its token, or
   * a URL that leads elsewhere): a retry will not help. Undefined for an outage.
   */
  readonly misconfigured: string | undefined;

  constructor(logDetail: string, options?: ErrorOptions & { readonly misconfigured?: string | undefined }) {
    super(
      options?.misconfigured !== undefined
        ? 'the service is misconfigured: the gateway cannot look up tenants'
        : 'the tenant directory is unreachable',
      options,
    );
    this.name = 'TenantDirectoryUnreachableError';
    this.logDetail = logDetail;
    this.misconfigured = options?.misconfigured;
  }

  /** The FATAL ErrorResponse for the client. */
  toErrorResponse(): Buffer {
    const hint =
      this.misconfigured !== undefined
        ? "Retrying will not help until the service's operators fix it; contact the service's support."
        : 'Retry in a moment.';
    return buildErrorResponse({ severity: 'FATAL', code: this.sqlState, message: this.message, hint });
  }
}

/** The gateway's own setup cannot serve this tenant (a missing certificate file, no default CA). */
export class GatewaySetupError extends Error {
  readonly code = ErrorCode.GatewaySetup;
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = 'GatewaySetupError';
  }
}

/**
 * Start-up cannot go on because of what one variable says: a file it names cannot be read, the
 * address it gives is in use. The message is the one line main.ts prints: `VARIABLE: reason`.
 */
export class StartupError extends Error {
  readonly code = ErrorCode.Startup;
  readonly variable: string;
  constructor(variable: string, reason: string, options?: ErrorOptions) {
    super(`${variable}: ${reason}`, options);
    this.name = 'StartupError';
    this.variable = variable;
  }
}

// ---------------------------------------------------------------------------------------------
// The backend leg (docs/architecture.md, step 10): one class per
// kind. Every kind but BackendStartupError reaches the client as 08001; the backend's own
// ErrorResponse is forwarded with its own SQLSTATE.

export const BackendErrorCode = {
  Unreachable: 'TG_ERR_BACKEND_UNREACHABLE',
  Timeout: 'TG_ERR_BACKEND_TIMEOUT',
  Closed: 'TG_ERR_BACKEND_CLOSED',
  Aborted: 'TG_ERR_BACKEND_ABORTED',
  NoTls: 'TG_ERR_BACKEND_NO_TLS',
  TlsConfig: 'TG_ERR_BACKEND_TLS_CONFIG',
  Tls: 'TG_ERR_BACKEND_TLS',
  TlsVersion: 'TG_ERR_BACKEND_TLS_VERSION',
  CertificateUntrusted: 'TG_ERR_BACKEND_CERT_UNTRUSTED',
  CertificateHostname: 'TG_ERR_BACKEND_CERT_HOSTNAME',
  CertificateExpired: 'TG_ERR_BACKEND_CERT_EXPIRED',
  CertificateInvalid: 'TG_ERR_BACKEND_CERT_INVALID',
  ClientCertificateRefused: 'TG_ERR_BACKEND_CLIENT_CERT_REFUSED',
  AuthUnsupported: 'TG_ERR_BACKEND_AUTH_UNSUPPORTED',
  AuthFailed: 'TG_ERR_BACKEND_AUTH_FAILED',
  Protocol: 'TG_ERR_BACKEND_PROTOCOL',
  Startup: 'TG_ERR_BACKEND_STARTUP',
} as const;
export type BackendErrorCode = (typeof BackendErrorCode)[keyof typeof BackendErrorCode];

/** The phases of the backend leg, for timeouts and log lines. */
export const BackendPhase = {
  /** DNS and the TCP connect. */
  Connect: 'connect',
  /** SSLRequest and the server's one-byte answer. */
  SslRequest: 'ssl-request',
  /** The TLS handshake. */
  Tls: 'tls',
  /** Connected and verified, waiting for the client's authentication to finish. */
  Idle: 'idle',
  /** StartupMessage, authentication, up to the first ReadyForQuery. */
  Startup: 'startup',
} as const;
export type BackendPhase = (typeof BackendPhase)[keyof typeof BackendPhase];

export interface BackendErrorOptions extends ErrorOptions {
  /** Everything an operator needs: address, server name, Node's error code and message. */
  readonly logDetail: string;
  readonly phase: BackendPhase;
}

/** A failure to reach a session on the tenant's database. `message` is safe to show the client. */
export class BackendError extends Error {
  readonly code: BackendErrorCode;
  readonly sqlState: string = SqlState.UnableToConnect;
  readonly logDetail: string;
  readonly phase: BackendPhase;

  constructor(code: BackendErrorCode, message: string, options: BackendErrorOptions) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = new.target.name;
    this.code = code;
    this.logDetail = options.logDetail;
    this.phase = options.phase;
  }

  /** The FATAL ErrorResponse for the client. */
  toErrorResponse(): Buffer {
    return buildErrorResponse({ severity: 'FATAL', code: this.sqlState, message: this.message });
  }
}

/** DNS failed, the connect was refused or reset, the network is unreachable. */
export class BackendUnreachableError extends BackendError {
  constructor(reason: string, options: BackendErrorOptions) {
    super(BackendErrorCode.Unreachable, `could not connect to the tenant's database: ${reason}`, options);
  }
}

/** A phase took longer than its limit. */
export class BackendTimeoutError extends BackendError {
  readonly timeoutMs: number;
  constructor(timeoutMs: number, options: BackendErrorOptions) {
    super(BackendErrorCode.Timeout, `timed out ${TIMEOUT_WHILE[options.phase]} the tenant's database`, options);
    this.timeoutMs = timeoutMs;
  }
}

const TIMEOUT_WHILE: Readonly<Record<BackendPhase, string>> = {
  connect: 'connecting to',
  'ssl-request': 'waiting for the TLS answer of',
  tls: 'in the TLS handshake with',
  idle: 'waiting to start a session on',
  startup: 'starting a session on',
};

/** The backend closed the connection where no close was expected, without saying why. */
export class BackendClosedError extends BackendError {
  constructor(options: BackendErrorOptions) {
    super(BackendErrorCode.Closed, "the tenant's database closed the connection before the session started", options);
  }
}

/** The caller gave up (its AbortSignal fired), e.g. the client went away. */
export class BackendAbortedError extends BackendError {
  constructor(options: BackendErrorOptions) {
    super(BackendErrorCode.Aborted, "the connection to the tenant's database was abandoned", options);
  }
}

/** The SSLRequest was answered with something other than 'S'. */
export class BackendNoTlsError extends BackendError {
  constructor(options: BackendErrorOptions) {
    super(BackendErrorCode.NoTls, "the tenant's database does not accept TLS", options);
  }
}

/** The CA, client certificate or key configured for the backend cannot be loaded. */
export class BackendTlsConfigError extends BackendError {
  constructor(options: BackendErrorOptions) {
    super(BackendErrorCode.TlsConfig, "the gateway's TLS settings for the tenant's database are invalid", options);
  }
}

/** A TLS failure that is not about a certificate (protocol versions, ciphers, a broken stream). */
export class BackendTlsError extends BackendError {
  constructor(reason: string, options: BackendErrorOptions, code: BackendErrorCode = BackendErrorCode.Tls) {
    super(code, `TLS with the tenant's database failed: ${reason}`, options);
  }
}

/** The backend offers no TLS version the tenant's policy allows (backend.tls.minVersion, else the gateway's). */
export class BackendTlsVersionError extends BackendTlsError {
  constructor(minVersion: string, options: BackendErrorOptions) {
    super(
      `it offers no TLS version from ${minVersion} up, which this database's TLS policy requires`,
      options,
      BackendErrorCode.TlsVersion,
    );
  }
}

/** verify-full failed; subclasses say how. The message names the reason, never the names involved. */
export class BackendCertificateError extends BackendError {
  constructor(reason: string, options: BackendErrorOptions, code: BackendErrorCode = BackendErrorCode.CertificateInvalid) {
    super(code, `could not verify the tenant database's certificate: ${reason}`, options);
  }
}

/** The certificate does not chain to the tenant's CA (or the gateway's default CA). */
export class BackendCertificateUntrustedError extends BackendCertificateError {
  constructor(options: BackendErrorOptions) {
    super('it is not signed by the certificate authority configured for the tenant', options, BackendErrorCode.CertificateUntrusted);
  }
}

/** The certificate does not name the backend's serverName (or host; IP addresses need an IP SAN). */
export class BackendCertificateHostnameError extends BackendCertificateError {
  constructor(options: BackendErrorOptions) {
    super('it is not issued for the name the tenant configured', options, BackendErrorCode.CertificateHostname);
  }
}

/** The certificate (or one of its chain) is expired or not yet valid. */
export class BackendCertificateExpiredError extends BackendCertificateError {
  constructor(reason: 'certificate has expired' | 'certificate is not yet valid', options: BackendErrorOptions) {
    super(reason, options, BackendErrorCode.CertificateExpired);
  }
}

/**
 * The backend refused the gateway's client certificate: a TLS alert, or (TLS 1.3, where the
 * server judges the client certificate after the client's handshake is over) a close or reset
 * right after the handshake with no reply at all.
 */
export class BackendClientCertificateRefusedError extends BackendError {
  constructor(options: BackendErrorOptions) {
    super(BackendErrorCode.ClientCertificateRefused, "the tenant's database refused the gateway's client certificate", options);
  }
}

/** The backend asked for a method the gateway cannot answer: it never has the password. */
export class BackendAuthUnsupportedError extends BackendError {
  constructor(method: string, options: BackendErrorOptions) {
    super(
      BackendErrorCode.AuthUnsupported,
      `the tenant's database asks for ${method} authentication, which the gateway cannot answer (it must use scram-sha-256 or cert)`,
      options,
    );
  }
}

/** SCRAM with the backend could not complete on our side (its own refusals are BackendStartupError). */
export class BackendAuthFailedError extends BackendError {
  constructor(reason: string, options: BackendErrorOptions) {
    super(BackendErrorCode.AuthFailed, `could not log in to the tenant's database: ${reason}`, options);
  }
}

/** The backend broke the protocol (bad lengths, unexpected messages, bytes before TLS). */
export class BackendProtocolError extends BackendError {
  constructor(options: BackendErrorOptions) {
    super(BackendErrorCode.Protocol, "the tenant's database sent an invalid reply", options);
  }
}

/**
 * An ErrorResponse from the backend during startup: 3D000 (no such database), 28000 (pg_hba),
 * 28P01 (the backend's secret is not the control plane's), 53300, 57P03, ... Its own fields go to
 * the client, so `sqlState` is the backend's and `message`, `detail` and `hint` are PostgreSQL's.
 */
export class BackendStartupError extends BackendError {
  override readonly sqlState: string;
  readonly fields: NoticeFields;
  readonly detail: string | undefined;
  readonly hint: string | undefined;

  constructor(fields: NoticeFields, options: BackendErrorOptions) {
    super(BackendErrorCode.Startup, fields.message, options);
    this.sqlState = fields.code;
    this.fields = fields;
    this.detail = fields.detail;
    this.hint = fields.hint;
  }

  /**
   * The backend's error as a FATAL for the client: SQLSTATE, message, detail and hint. pg_hba's
   * messages name the connecting host, which is the gateway's internal address: that is masked.
   */
  override toErrorResponse(): Buffer {
    const mask = (text: string) => this.#renamed(maskHbaHost(text));
    return buildErrorResponse({
      severity: 'FATAL',
      code: this.sqlState,
      message: mask(this.message),
      ...(this.detail === undefined ? {} : { detail: mask(this.detail) }),
      ...(this.hint === undefined ? {} : { hint: mask(this.hint) }),
    });
  }

  #names: readonly (readonly [backend: string, client: string])[] = [];

  /**
   * The backend names the rewritten user and database (`user "acme_app"`), which the client was
   * never told: each quoted backend name is shown as the client's own.
   */
  showClientNames(names: readonly (readonly [backend: string, client: string])[]): this {
    this.#names = names.filter(([backend, client]) => backend !== client && backend !== '');
    return this;
  }

  #renamed(text: string): string {
    let result = text;
    for (const [backend, client] of this.#names) result = result.replaceAll(`"${backend}"`, `"${client}"`);
    return result;
  }
}

/** `no pg_hba.conf entry for host "10.0.1.5", user ...` and `pg_hba.conf rejects connection for host "..."`. */
const HBA_HOST = /(\bfor host )"[^"]*"/g;

export function maskHbaHost(text: string): string {
  return text.replace(HBA_HOST, '$1"(the gateway)"');
}
