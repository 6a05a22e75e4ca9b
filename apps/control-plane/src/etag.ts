// Versions as entity tags: every response about a tenant carries `ETag: "<version>"`, and a
// write with `If-Match` applies only to that version (RFC 9110 §13.1.1).

export function etagOf(version: number): string {
  return `"${version}"`;
}

/** The If-Match condition of a write. */
export type IfMatch =
  { readonly kind: 'any' } | { readonly kind: 'versions'; readonly versions: readonly number[] } | { readonly kind: 'invalid' };

/**
 * Parses an If-Match header: absent or `*` match any version; otherwise a list of strong tags
 * of versions (`"12"`, `"12", "13"`). Weak tags never match a write, as RFC 9110 says.
 */
export function parseIfMatch(header: string | undefined): IfMatch {
  if (header === undefined || header.trim() === '*') return { kind: 'any' };
  const versions: number[] = [];
  for (const part of header.split(',')) {
    const tag = part.trim();
    if (tag.startsWith('W/')) continue;
    const match = /^"([1-9][0-9]{0,15})"$/.exec(tag);
    if (match === null) return { kind: 'invalid' };
    versions.push(Number(match[1]));
  }
  return { kind: 'versions', versions };
}
