// Clusters and the provisioner, decorated on the app: `clusters` (the registered clusters) and
// `provisioning` (undefined without CONTROL_PLANE_SECRETS_DIR: then nothing is provisioned, and
// /v1/clusters and tenants on a cluster answer 501). The provisioner starts with the app and
// finishes its jobs in progress when the app closes.
import fp from 'fastify-plugin';
import type { FastifyPluginAsync } from 'fastify';
import { ClusterStore } from '../clusters/cluster-store.ts';
import { Provisioner } from '../clusters/provisioner.ts';
import { ClustersNotConfiguredError } from '../errors.ts';

export interface Provisioning {
  readonly secretsDir: string;
  readonly provisioner: Provisioner;
}

declare module 'fastify' {
  interface FastifyInstance {
    clusters: ClusterStore;
    /** @throws ClustersNotConfiguredError without CONTROL_PLANE_SECRETS_DIR */
    provisioning(): Provisioning;
  }
}

export interface ProvisioningPluginOptions {
  /** CONTROL_PLANE_SECRETS_DIR; absent: no clusters. */
  readonly secretsDir?: string;
  /** How often jobs left by others (or due retries) are looked for; default 2000 ms. */
  readonly pollIntervalMs?: number;
}

const provisioning: FastifyPluginAsync<ProvisioningPluginOptions> = async (app, options) => {
  const clusters = new ClusterStore(app.store.database);
  app.decorate('clusters', clusters);
  const { secretsDir } = options;
  if (secretsDir === undefined) {
    app.decorate('provisioning', () => {
      throw new ClustersNotConfiguredError();
    });
    return;
  }
  const provisioner = new Provisioner({
    database: app.store.database,
    store: app.store,
    clusters,
    secretsDir,
    logger: app.log.child({ component: 'provisioning' }),
    onChange: () => void app.invalidations.publish(),
    onFailure: (action) => app.metrics.provisioningFailures.inc({ action }),
    pollIntervalMs: options.pollIntervalMs,
  });
  app.decorate('provisioning', () => ({ secretsDir, provisioner }));
  app.addHook('onReady', async () => provisioner.start());
  app.addHook('onClose', async () => provisioner.close());
};

export default fp(provisioning, { name: 'provisioning', fastify: '5.x', dependencies: ['store', 'invalidation', 'metrics'] });
