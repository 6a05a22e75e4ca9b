// Turns what Node reports on the backend socket (syscall errors, OpenSSL errors, verify codes) into
// the BackendError classes. The client's message comes from the class; Node's own words, which
// may name hosts and addresses, go to `logDetail` only.
// Map: docs/architecture.md, step 10.
import {
  BackendCertificateError,
  BackendCertificateExpiredError,
  BackendCertificateHostnameError,
  BackendCertificateUntrustedError,
  BackendClientCertificateRefusedError,
  BackendClosedError,
  BackendError,
  BackendTlsError,
  BackendTlsVersionError,
  BackendUnreachableError,
  type BackendErrorOptions,
  type BackendPhase,
} from '../errors.ts';

type NodeError = Error & { code?: unknown; reason?: unknown };

/** Why a connect failed, for the client: OS reasons without the address they carry. */
const UNREACHABLE_REASONS: Readonly<Record<string, string>> = {
  ECONNREFUSED: 'connection refused',
  ECONNRESET: 'connection reset',
  ETIMEDOUT: 'connection timed out',
  EHOSTUNREACH: 'host unreachable',
  EHOSTDOWN: 'host is down',
  ENETUNREACH: 'network unreachable',
  ENETDOWN: 'network is down',
  EADDRNOTAVAIL: 'address not available',
  ENOTFOUND: 'its host name could not be resolved',
  EAI_AGAIN: 'its host name could not be resolved (temporary failure)',
  EAI_FAIL: 'its host name could not be resolved',
  EAI_NODATA: 'its host name has no address',
};

/** X509_V_ERR_* names as Node reports them: the chain does not lead to the trusted CA. */
const UNTRUSTED_CODES = new Set([
  'UNABLE_TO_GET_ISSUER_CERT',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'CERT_SIGNATURE_FAILURE',
  'UNABLE_TO_DECRYPT_CERT_SIGNATURE',
  'UNABLE_TO_DECODE_ISSUER_PUBLIC_KEY',
  'CERT_UNTRUSTED',
  'CERT_REJECTED',
]);

/** Other verification failures; Node's message for these is OpenSSL's reason, which names nothing. */
const OTHER_VERIFY_CODES = new Set([
  'CERT_REVOKED',
  'CERT_CHAIN_TOO_LONG',
  'INVALID_CA',
  'PATH_LENGTH_EXCEEDED',
  'INVALID_PURPOSE',
  'ERROR_IN_CERT_NOT_BEFORE_FIELD',
  'ERROR_IN_CERT_NOT_AFTER_FIELD',
  'UNABLE_TO_GET_CRL',
  'CRL_HAS_EXPIRED',
  'CRL_NOT_YET_VALID',
  'CRL_SIGNATURE_FAILURE',
  'UNABLE_TO_DECRYPT_CRL_SIGNATURE',
  'ERROR_IN_CRL_LAST_UPDATE_FIELD',
  'ERROR_IN_CRL_NEXT_UPDATE_FIELD',
  'HOSTNAME_MISMATCH',
]);

/** Alerts the server sends about the certificate the client presented (ours); OpenSSL 3 names some `SSL/TLS_ALERT_*`. */
const CLIENT_CERTIFICATE_ALERT =
  /^ERR_SSL_(?:SSLV3|TLSV1|TLSV13|SSL\/TLS)_ALERT_(?:BAD_CERTIFICATE|UNSUPPORTED_CERTIFICATE|CERTIFICATE_[A-Z_]+|UNKNOWN_CA|ACCESS_DENIED)$/;

export function errorCode(error: unknown): string | undefined {
  const code = (error as NodeError | undefined)?.code;
  return typeof code === 'string' ? code : undefined;
}

/** `code: message` for a log line. */
export function describeError(error: unknown): string {
  if (!(error instanceof Error)) return String(error);
  const code = errorCode(error);
  return code === undefined ? error.message : `${code}: ${error.message}`;
}

/** A failed TCP connect (DNS, refused, unreachable). */
export function unreachableError(error: unknown, where: string, phase: BackendPhase): BackendError {
  const reason = UNREACHABLE_REASONS[errorCode(error) ?? ''] ?? 'the connection failed';
  return new BackendUnreachableError(reason, { phase, logDetail: `${where}: ${describeError(error)}`, cause: error });
}

export function isClientCertificateAlert(error: unknown): boolean {
  return CLIENT_CERTIFICATE_ALERT.test(errorCode(error) ?? '');
}

/** An error of the TLS socket: verification, the server's alerts, or the stream breaking. */
export function tlsFailure(error: unknown, where: string, phase: BackendPhase, minVersion?: string): BackendError {
  const code = errorCode(error) ?? '';
  const options: BackendErrorOptions = { phase, logDetail: `${where}: ${describeError(error)}`, cause: error };
  if (PROTOCOL_VERSION_CODES.has(code)) {
    // OpenSSL only says the versions did not meet; what the backend offered is below the floor.
    const floor = minVersion ?? 'TLSv1.2';
    return new BackendTlsVersionError(floor, {
      ...options,
      logDetail: `${options.logDetail} (the backend offers no TLS version from ${floor} up)`,
    });
  }
  if (UNTRUSTED_CODES.has(code)) return new BackendCertificateUntrustedError(options);
  if (code === 'ERR_TLS_CERT_ALTNAME_INVALID') return new BackendCertificateHostnameError(options);
  if (code === 'CERT_HAS_EXPIRED') return new BackendCertificateExpiredError('certificate has expired', options);
  if (code === 'CERT_NOT_YET_VALID') return new BackendCertificateExpiredError('certificate is not yet valid', options);
  if (OTHER_VERIFY_CODES.has(code)) return new BackendCertificateError((error as Error).message, options);
  if (isClientCertificateAlert(error)) return new BackendClientCertificateRefusedError(options);
  if (code.startsWith('ERR_SSL_')) return new BackendTlsError(opensslReason(error), options);
  if (code === 'ECONNRESET' || code === 'EPIPE') return new BackendClosedError(options);
  return new BackendTlsError('the connection failed', options);
}

/** The handshake failed on the protocol version: the two sides share none. */
const PROTOCOL_VERSION_CODES = new Set([
  'ERR_SSL_TLSV1_ALERT_PROTOCOL_VERSION',
  'ERR_SSL_UNSUPPORTED_PROTOCOL',
  'ERR_SSL_NO_PROTOCOLS_AVAILABLE',
]);

/** OpenSSL's reason string ("wrong version number"), without its hex error codes. */
function opensslReason(error: unknown): string {
  const reason = (error as NodeError).reason;
  return typeof reason === 'string' && reason !== '' ? reason : 'the handshake failed';
}
