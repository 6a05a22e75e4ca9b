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

/** The token of an `Authorization: Bearer <token>` header, or undefined. */
export function bearerTokenOf(header: string | undefined): string | undefined {
  const match = /^Bearer\s+(\S+)\s*$/i.exec(header ?? '');
  return match?.[1];
}

/** Whether `token` is one of `tokens`, compared through their digests so the time says nothing. */
export function isKnownToken(token: string | undefined, tokens: readonly string[]): boolean {
  if (token === undefined) return false;
  const digest = createHash('sha256').update(token).digest();
  let known = false;
  for (const candidate of tokens) known = timingSafeEqual(digest, createHash('sha256').update(candidate).digest()) || known;
  return known;
}
