// Which failures of an HTTP request mean "no answer came" (worth a retry: the request may not
// have reached the server, or the server went away) as opposed to an answer we did not like.
// A GET of a route is idempotent, so retrying after a reset is safe.

const TRANSPORT_CODES = new Set([
  // undici
  'UND_ERR_CONNECT_TIMEOUT',
  'UND_ERR_HEADERS_TIMEOUT',
  'UND_ERR_BODY_TIMEOUT',
  'UND_ERR_SOCKET',
  // the socket and DNS (EAI_AGAIN: a resolver that did not answer, unlike ENOTFOUND)
  'ECONNREFUSED',
  'ECONNRESET',
  'ECONNABORTED',
  'EPIPE',
  'ETIMEDOUT',
  'EHOSTUNREACH',
  'EHOSTDOWN',
  'ENETUNREACH',
  'ENETDOWN',
  'EAI_AGAIN',
]);

/** True when `error` (or an error in its `cause` chain, or in an AggregateError) is a transport failure. */
export function isTransportFailure(error: unknown, depth = 0): boolean {
  if (typeof error !== 'object' || error === null || depth > 4) return false;
  const { code, cause, errors } = error as { code?: unknown; cause?: unknown; errors?: unknown };
  if (typeof code === 'string' && TRANSPORT_CODES.has(code)) return true;
  // Happy eyeballs (autoSelectFamily) reports every address it tried in one AggregateError.
  if (Array.isArray(errors) && errors.some((e) => isTransportFailure(e, depth + 1))) return true;
  return isTransportFailure(cause, depth + 1);
}
