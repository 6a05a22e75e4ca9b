// Bearer tokens and what they may do. Tokens are compared as SHA-256 digests with
// timingSafeEqual, against every configured token without stopping at a match, so the time a
// check takes says nothing about how much of a guess was right, or which list matched.
import { createHash, timingSafeEqual } from 'node:crypto';

export const Access = {
  /** Reads and writes everything. */
  Admin: 'admin',
  /** Reads routes (GET /v1/routes/:id) only. */
  Gateway: 'gateway',
} as const;
export type Access = (typeof Access)[keyof typeof Access];

interface Entry {
  readonly digest: Buffer;
  readonly access: Access;
}

export class TokenTable {
  readonly #entries: readonly Entry[];

  constructor(adminTokens: readonly string[], gatewayTokens: readonly string[] = []) {
    this.#entries = [
      ...adminTokens.map((token) => ({ digest: digest(token), access: Access.Admin })),
      ...gatewayTokens.map((token) => ({ digest: digest(token), access: Access.Gateway })),
    ];
  }

  /** The access a token grants, or undefined for an unknown token. Admin wins over gateway. */
  lookup(token: string): Access | undefined {
    const candidate = digest(token);
    let found: Access | undefined;
    for (const entry of this.#entries) {
      if (timingSafeEqual(candidate, entry.digest) && found !== Access.Admin) found = entry.access;
    }
    return found;
  }
}

/** The token of an `Authorization: Bearer <token>` header (scheme case-insensitive, RFC 6750). */
export function bearerToken(header: string | undefined): string | undefined {
  if (header === undefined) return undefined;
  const match = /^Bearer +([A-Za-z0-9\-._~+/]+=*) *$/i.exec(header);
  return match?.[1];
}

function digest(token: string): Buffer {
  return createHash('sha256').update(token, 'utf8').digest();
}
