export * from './schema.ts';
export * from './tenant.ts';
export * from './cidr.ts';
export * from './route-cache.ts';
export * from './errors.ts';
export * from './observer.ts';
export { createTenantResolver, type TenantResolution, type TenantResolver } from './resolver.ts';
export { RESOLVER_DEFAULTS, type TenantResolverOptions } from './resolver-options.ts';
export { checkTenantRoute, tenantRouteSchema } from './route-validation.ts';
