export * from './schema.ts';
export * from './tenant.ts';
export * from './cidr.ts';
export * from './route-cache.ts';
