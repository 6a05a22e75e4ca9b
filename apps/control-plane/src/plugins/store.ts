// The tenant store, decorated on the app; its schema is migrated before the app is ready.
import fp from 'fastify-plugin';
import type { FastifyPluginAsync } from 'fastify';
import type { Database } from '../db/database.ts';
import { migrate } from '../db/migrations.ts';
import { TenantStore } from '../store.ts';

declare module 'fastify' {
  interface FastifyInstance {
    store: TenantStore;
  }
}

export interface StorePluginOptions {
  readonly database: Database;
  /** Keep an invalidation outbox (when invalidations are published to Redis). */
  readonly outbox: boolean;
  /** Apply pending migrations at start; default true. */
  readonly migrate?: boolean;
}

const store: FastifyPluginAsync<StorePluginOptions> = async (app, options) => {
  if (options.migrate !== false) {
    const { applied, version } = await migrate(options.database);
    if (applied.length > 0) app.log.info({ applied, version }, 'database migrated');
  }
  app.decorate('store', new TenantStore(options.database, { outbox: options.outbox }));
};

export default fp(store, { name: 'store', fastify: '5.x' });
