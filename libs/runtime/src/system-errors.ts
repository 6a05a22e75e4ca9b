// Node's system errors in the words of a start-up line: `no such file` rather than
// `ENOENT: no such file or directory, open '/etc/edge.crt'`, whose path the line already names.

const WORDS: Readonly<Record<string, string>> = {
  ENOENT: 'no such file',
  EACCES: 'permission denied',
  EPERM: 'permission denied',
  EISDIR: 'is a directory',
  ENOTDIR: 'a part of the path is not a directory',
  ECONNREFUSED: 'connection refused',
  ECONNRESET: 'connection reset',
  ENOTFOUND: 'host not found',
  EAI_AGAIN: 'host name lookup failed',
  ETIMEDOUT: 'timed out',
  EHOSTUNREACH: 'host unreachable',
  ENETUNREACH: 'network unreachable',
};

/** A few words for `error`: by its code when Node gave one, else its message. */
export function describeSystemError(error: unknown): string {
  const code = systemErrorCode(error);
  if (code !== undefined && WORDS[code] !== undefined) return WORDS[code];
  return error instanceof Error ? error.message : String(error);
}

/** The code of `error`, or of the first error it aggregates (a connect tried on IPv4 and IPv6). */
function systemErrorCode(error: unknown): string | undefined {
  const { code, errors } = (error ?? {}) as { code?: unknown; errors?: unknown };
  if (typeof code === 'string') return code;
  return Array.isArray(errors) && errors.length > 0 ? systemErrorCode(errors[0]) : undefined;
}
