// What the resolver's tiers hold for one tenant id: a route, or "no such tenant". The Redis value
// is this answer as JSON (route-cache.ts leaves the format to the resolver):
//   {"kind":"found","route":{...TenantRoute}}    or    {"kind":"unknown"}
import { CachedRouteInvalidError } from './errors.ts';
import { checkTenantRoute } from './route-validation.ts';
import type { TenantRoute } from './tenant.ts';

export type RouteAnswer = { readonly kind: 'found'; readonly route: TenantRoute } | { readonly kind: 'unknown' };

export const UNKNOWN_TENANT: RouteAnswer = Object.freeze({ kind: 'unknown' });

export function foundAnswer(route: TenantRoute): RouteAnswer {
  return Object.freeze({ kind: 'found', route });
}

/** The version FILL_ROUTE_SCRIPT compares with the floor: 0 for an unknown tenant. */
export function answerVersion(answer: RouteAnswer): number {
  return answer.kind === 'found' ? answer.route.version : 0;
}

export function encodeRouteAnswer(answer: RouteAnswer): string {
  return JSON.stringify(answer.kind === 'found' ? { kind: 'found', route: answer.route } : { kind: 'unknown' });
}

/** @throws CachedRouteInvalidError for anything but an answer about `tenantId`. */
export function decodeRouteAnswer(raw: string, tenantId: string): RouteAnswer {
  let value: unknown;
  try {
    value = JSON.parse(raw);
  } catch (error) {
    throw new CachedRouteInvalidError(`cached route of "${tenantId}" is not JSON`, { cause: error });
  }
  const { kind, route } = (typeof value === 'object' && value !== null ? value : {}) as Record<string, unknown>;
  if (kind === 'unknown') return UNKNOWN_TENANT;
  if (kind !== 'found') throw new CachedRouteInvalidError(`cached route of "${tenantId}" has no known kind`);
  const checked = checkTenantRoute(route, tenantId);
  if ('problem' in checked) throw new CachedRouteInvalidError(`cached route of "${tenantId}": ${checked.problem}`);
  return foundAnswer(checked.route);
}
