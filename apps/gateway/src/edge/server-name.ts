// The TLS server name (SNI) a client asked for, matched against the configured DNS suffixes.
// Both the certificate choice and the tenant id read it the same way: lower case, no trailing
// dot, and the longest suffix wins (`.eu.db.example.com` before `.db.example.com`).
// @see https://www.rfc-editor.org/rfc/rfc6066#section-3
// Map: docs/architecture.md, step 3.

/** `Acme.DB.example.com.` → `acme.db.example.com`; an absent or empty name → undefined. */
export function normalizeServerName(serverName: string | false | null | undefined): string | undefined {
  if (typeof serverName !== 'string') return undefined;
  const name = serverName.toLowerCase().replace(/\.$/, '');
  return name === '' ? undefined : name;
}

/** Suffixes as GatewayConfig holds them (`.db.example.com`), longest first. */
export function bySpecificity(suffixes: readonly string[]): string[] {
  return suffixes.map(normalizeSuffix).toSorted((a, b) => b.length - a.length);
}

/** Lower case with one leading dot, the form {@link matchSuffix} compares against. */
export function normalizeSuffix(suffix: string): string {
  const lower = suffix.trim().toLowerCase().replace(/\.$/, '');
  return lower.startsWith('.') ? lower : `.${lower}`;
}

export interface SuffixMatch {
  readonly suffix: string;
  /** Everything before the suffix: `acme` for `acme.db.example.com`; may hold dots. */
  readonly prefix: string;
}

/**
 * The first suffix of `sortedSuffixes` (from {@link bySpecificity}) that `name` (from
 * {@link normalizeServerName}) ends with, leaving at least one character before it.
 */
export function matchSuffix(name: string, sortedSuffixes: readonly string[]): SuffixMatch | undefined {
  for (const suffix of sortedSuffixes) {
    if (name.length > suffix.length && name.endsWith(suffix)) {
      return { suffix, prefix: name.slice(0, name.length - suffix.length) };
    }
  }
  return undefined;
}
