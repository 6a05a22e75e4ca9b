// The contract between the control plane (which writes tenants) and the gateways' resolvers
// (which cache their routes in Redis and in memory). Both sides take the names from here.
//
// A write in the control plane, once committed, runs one MULTI:
//   SET   <floor key>  <new version>      (no expiry: the lowest version a cache may hold)
//   DEL   <route key>                     (the cached route, if any)
//   PUBLISH <channel>  <invalidation message>
// A resolver fills Redis only through FILL_ROUTE_SCRIPT, which refuses a value older than the
// floor, so a fill that raced a write can never put the old value back. Versions come from one
// sequence across all tenants, so a deleted and re-created tenant never reuses a version.

export const ROUTE_KEY_PREFIX = 'tenantgate:route:';

/**
 * The `code` of the control plane's 404 body for a tenant that does not exist. Any other 404 (a
 * wrong base path, a proxy's page) is a failure, never "no such tenant": that would be cached
 * and refuse every tenant.
 */
export const TENANT_NOT_FOUND_CODE = 'TG_ERR_TENANT_NOT_FOUND';
export const ROUTE_FLOOR_KEY_PREFIX = 'tenantgate:route-floor:';
export const INVALIDATION_CHANNEL = 'tenantgate:invalidate';

export function routeKey(tenantId: string): string {
  return ROUTE_KEY_PREFIX + tenantId;
}

export function routeFloorKey(tenantId: string): string {
  return ROUTE_FLOOR_KEY_PREFIX + tenantId;
}

/** Published after every committed write; `version` is null when the tenant was deleted. */
export interface InvalidationMessage {
  id: string;
  version: number | null;
}

export function encodeInvalidation(message: InvalidationMessage): string {
  return JSON.stringify({ id: message.id, version: message.version });
}

/** Returns null for a message that is not an invalidation (never throws on bad input). */
export function decodeInvalidation(raw: string): InvalidationMessage | null {
  let value: unknown;
  try {
    value = JSON.parse(raw);
  } catch {
    return null;
  }
  if (typeof value !== 'object' || value === null) return null;
  const { id, version } = value as Record<string, unknown>;
  if (typeof id !== 'string') return null;
  if (version !== null && !(typeof version === 'number' && Number.isSafeInteger(version))) return null;
  return { id, version };
}

/**
 * KEYS[1] route key, KEYS[2] floor key; ARGV[1] version of the value (0 for "unknown tenant"),
 * ARGV[2] the value, ARGV[3] TTL in milliseconds. Returns 1 when stored, 0 when refused.
 */
export const FILL_ROUTE_SCRIPT = `
local floor = tonumber(redis.call('GET', KEYS[2]) or '0')
if tonumber(ARGV[1]) < floor then return 0 end
redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
return 1
`;
