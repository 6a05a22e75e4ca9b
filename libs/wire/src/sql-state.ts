// The SQLSTATEs tenantgate sends in an ErrorResponse (buildErrorResponse in serializer.ts), with
// PostgreSQL's condition names. Every refusal of the gateway takes its code from here, and the
// gateway's refusal metric takes its label values from here.
// @see https://www.postgresql.org/docs/current/errcodes-appendix.html
export const SqlState = {
  /** sqlclient_unable_to_establish_sqlconnection: backend unreachable or failing, no tenant directory. */
  UnableToConnect: '08001',
  /** sqlserver_rejected_establishment_of_sqlconnection: no, unknown, conflicting or suspended tenant. */
  ConnectionRejected: '08004',
  /** protocol_violation: malformed packets, bytes after SSLRequest. */
  ProtocolViolation: '08P01',
  /** feature_not_supported: replication the tenant does not allow, unknown protocol major version. */
  FeatureNotSupported: '0A000',
  /** invalid_parameter_value: a startup parameter PostgreSQL would refuse (`replication=maybe`). */
  InvalidParameterValue: '22023',
  /** invalid_authorization_specification: TLS required, no user name, address not allowed. */
  InvalidAuthorization: '28000',
  /** invalid_password: wrong password or unknown role. */
  InvalidPassword: '28P01',
  /** too_many_connections: per-tenant cap, connect rate, pending-handshake cap. */
  TooManyConnections: '53300',
  /** query_canceled: PostgreSQL's code for "canceling authentication due to timeout". */
  QueryCanceled: '57014',
  /** admin_shutdown: the gateway is shutting down or an operator ended the session. */
  AdminShutdown: '57P01',
  /** cannot_connect_now: tenant in maintenance or still starting. */
  CannotConnectNow: '57P03',
  /** internal_error: a bug on our side, never expected. */
  InternalError: 'XX000',
} as const;
export type SqlState = (typeof SqlState)[keyof typeof SqlState];

const KNOWN = new Set<string>(Object.values(SqlState));

/** Whether `code` is one of the SQLSTATEs of {@link SqlState}. */
export function isKnownSqlState(code: string): code is SqlState {
  return KNOWN.has(code);
}
