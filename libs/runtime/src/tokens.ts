// Bearer tokens in variables (CONTROL_PLANE_ADMIN_TOKENS, CONTROL_PLANE_GATEWAY_TOKENS,
// GATEWAY_ADMIN_TOKENS): one rule for both apps, and comparison in constant time.
import { createHash, timingSafeEqual } from 'node:crypto';

/** Shortest token accepted: a guessable token would open the whole API. */
export const MIN_TOKEN_LENGTH = 16;
export const MAX_TOKEN_LENGTH = 256;
export const TOKENS_EXPECTS = `tokens of ${MIN_TOKEN_LENGTH} to ${MAX_TOKEN_LENGTH} characters (A-Z a-z 0-9 - . _ ~ + / =), comma-separated`;

/** The token characters of RFC 6750 (b64token), which is what a Bearer header can carry. */
const TOKEN = /^[A-Za-z0-9\-._~+/]+=*$/;

/** The position of the first token that breaks the rule, or -1 when all are good. */
export function badTokenIndex(tokens: readonly string[]): number {
  return tokens.findIndex((t) => t.length < MIN_TOKEN_LENGTH || t.length > MAX_TOKEN_LENGTH || !TOKEN.test(t));
}

/** The token of an `Authorization: Bearer <token>` header (scheme case-insensitive, RFC 6750), or undefined. */
export function bearerToken(header: string | undefined): string | undefined {
  if (header === undefined) return undefined;
  return /^Bearer +([A-Za-z0-9\-._~+/]+=*) *$/i.exec(header)?.[1];
}

/**
 * A list of tokens, checked in constant time: as SHA-256 digests with timingSafeEqual, against
 * every token without stopping at a match, so the time a check takes says nothing about how much
 * of a guess was right. The digests are made once.
 */
export class KnownTokens {
  readonly #digests: readonly Buffer[];

  constructor(tokens: readonly string[]) {
    this.#digests = tokens.map(digest);
  }

  get size(): number {
    return this.#digests.length;
  }

  has(token: string | undefined): boolean {
    if (token === undefined) return false;
    const candidate = digest(token);
    let known = false;
    for (const entry of this.#digests) known = timingSafeEqual(candidate, entry) || known;
    return known;
  }
}

function digest(token: string): Buffer {
  return createHash('sha256').update(token, 'utf8').digest();
}
