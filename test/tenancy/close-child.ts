// Run by resolver.test.ts in a process of its own: builds a resolver against the Redis and the
// control plane double named in the environment, uses every part of it (Redis, the subscriber,
// the HTTP pool, a request in flight), closes it, and prints what still keeps the event loop
// alive. The process must then exit by itself.
import { setTimeout as sleep } from 'node:timers/promises';
import { createTenantResolver, type ResolverError } from '@tenantgate/tenancy';

const resolver = createTenantResolver({
  controlPlaneUrl: process.env.TG_CONTROL_PLANE_URL ?? '',
  controlPlaneToken: process.env.TG_CONTROL_PLANE_TOKEN ?? '',
  redisUrl: process.env.TG_REDIS_URL,
  retryBaseDelayMs: 1,
});
await resolver.ready();
const found = await resolver.resolve('acme');
const unknown = await resolver.resolve('ghost');
// The double holds this one without answering; close() must end it.
const pending = resolver.resolve('slow').then(
  () => 'answered',
  (error: ResolverError) => error.code,
);
await sleep(200);
await resolver.close();
const slow = await pending;
await new Promise((resolve) => setImmediate(resolve));
process.stdout.write(JSON.stringify({ found: found.kind, unknown: unknown.kind, slow, resources: process.getActiveResourcesInfo() }));
