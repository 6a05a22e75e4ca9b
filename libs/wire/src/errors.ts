// Errors raised by libs/wire. Each has a stable `code`; the gateway maps them to SQLSTATEs.

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
  readonly sqlState = '08P01';
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
