// Errors raised by libs/wire. Each has a stable `code` and the SQLSTATE a client is sent.
import { SqlState } from './sql-state.ts';

export const WireErrorCode = {
  Protocol: 'TG_ERR_PROTOCOL',
  Scram: 'TG_ERR_SCRAM',
} as const;
export type WireErrorCode = (typeof WireErrorCode)[keyof typeof WireErrorCode];

export class WireError extends Error {
  readonly code: WireErrorCode;
  constructor(code: WireErrorCode, message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = new.target.name;
    this.code = code;
  }
}

/** Bytes that break the Postgres protocol: bad lengths, bad codes, truncated fields (08P01). */
export class ProtocolError extends WireError {
  readonly sqlState = SqlState.ProtocolViolation;
  constructor(message: string, options?: ErrorOptions) {
    super(WireErrorCode.Protocol, message, options);
  }
}

/** A SCRAM exchange that is malformed or fails verification. */
export class ScramError extends WireError {
  constructor(message: string, options?: ErrorOptions) {
    super(WireErrorCode.Scram, message, options);
  }
}

/** A SCRAM message that breaks the grammar or the negotiation rules of RFC 5802 (08P01). */
export class ScramProtocolError extends ScramError {
  readonly sqlState = SqlState.ProtocolViolation;
}

/**
 * A well-formed SCRAM exchange that fails: a wrong password or an unknown role (28P01), or
 * channel binding data that does not match this connection (28000, as PostgreSQL reports it).
 */
export class ScramAuthError extends ScramError {
  readonly sqlState: ScramAuthSqlState;
  constructor(message: string, sqlState: ScramAuthSqlState = SqlState.InvalidPassword, options?: ErrorOptions) {
    super(message, options);
    this.sqlState = sqlState;
  }
}

type ScramAuthSqlState = typeof SqlState.InvalidPassword | typeof SqlState.InvalidAuthorization;
