// Clusters, computes and the jobs on them, decorated on the app: `clusters` (the registered
// clusters), `provisioning()` (501 without CONTROL_PLANE_SECRETS_DIR: then nothing is provisioned)
// and `compute()` (501 without a compute driver: then nothing is woken). The job runner and the
// idle suspender start with the app and finish what is in progress when it closes.
import fp from 'fastify-plugin';
import type { FastifyInstance, FastifyPluginAsync } from 'fastify';
import { ClusterStore } from '../clusters/cluster-store.ts';
import { Provisioner } from '../clusters/provisioner.ts';
import type { Redis } from 'ioredis';
import type { ComputeDriver } from '../compute/driver.ts';
import { IdleSuspender, liveSessions } from '../compute/idle-suspender.ts';
import { LocalComputeDriver } from '../compute/local.ts';
import { WebhookComputeDriver } from '../compute/webhook.ts';
import { ClustersNotConfiguredError, ComputeNotConfiguredError } from '../errors.ts';

export interface Provisioning {
  readonly secretsDir: string;
  readonly provisioner: Provisioner;
}

declare module 'fastify' {
  interface FastifyInstance {
    clusters: ClusterStore;
    /** @throws ClustersNotConfiguredError without CONTROL_PLANE_SECRETS_DIR */
    provisioning(): Provisioning;
    /** @throws ComputeNotConfiguredError without a compute driver */
    compute(): { readonly driver: ComputeDriver; readonly provisioner: Provisioner };
  }
}

/** CONTROL_PLANE_COMPUTE_*: how computes are started and stopped; absent: not at all. */
export type ComputeSettings = { readonly driver: 'webhook'; readonly url: string; readonly secret: string } | { readonly driver: 'local' };

export interface ProvisioningPluginOptions {
  /** CONTROL_PLANE_SECRETS_DIR; absent: no clusters. */
  readonly secretsDir?: string;
  /** How often jobs left by others (or due retries) are looked for; default 2000 ms. */
  readonly pollIntervalMs?: number;
  readonly compute?: ComputeSettings;
  /** Live sessions are read from the gateways' leases here (idle suspend needs it). */
  readonly redis?: Redis;
  /** How often idle tenants are looked for; default 1000 ms. */
  readonly idleCheckMs?: number;
}

const provisioning: FastifyPluginAsync<ProvisioningPluginOptions> = async (app, options) => {
  const clusters = new ClusterStore(app.store.database);
  app.decorate('clusters', clusters);
  const { secretsDir, redis } = options;
  const driver = computeDriver(options.compute, app);
  const provisioner = new Provisioner({
    database: app.store.database,
    store: app.store,
    clusters,
    secretsDir,
    logger: app.log.child({ component: 'provisioning' }),
    onChange: () => void app.invalidations.publish(),
    onFailure: (action) => app.metrics.provisioningFailures.inc({ action }),
    pollIntervalMs: options.pollIntervalMs,
    ...(driver === undefined ? {} : { compute: driver }),
    ...(redis === undefined ? {} : { liveSessions: (id: string) => liveSessions(redis, id) }),
  });
  app.decorate('provisioning', () => {
    if (secretsDir === undefined) throw new ClustersNotConfiguredError();
    return { secretsDir, provisioner };
  });
  app.decorate('compute', () => {
    if (driver === undefined) throw new ComputeNotConfiguredError();
    return { driver, provisioner };
  });
  app.addHook('onReady', async () => provisioner.start());
  app.addHook('onClose', async () => provisioner.close());
  if (driver === undefined) return;
  if (redis === undefined) {
    app.log.warn("idleSuspendSeconds is not acted on without REDIS_URL: the gateways' sessions are counted there");
    return;
  }
  const idle = new IdleSuspender({
    store: app.store,
    redis,
    logger: app.log.child({ component: 'idle-suspend' }),
    onSuspend: () => {
      void app.invalidations.publish();
      provisioner.kick();
    },
    intervalMs: options.idleCheckMs,
  });
  app.addHook('onReady', async () => idle.start());
  app.addHook('onClose', async () => idle.close());
};

function computeDriver(settings: ComputeSettings | undefined, app: FastifyInstance): ComputeDriver | undefined {
  if (settings === undefined) return undefined;
  if (settings.driver === 'webhook') return new WebhookComputeDriver(settings.url, settings.secret);
  return new LocalComputeDriver({ awakeOnCluster: (cluster, except) => app.store.awakeOnCluster(cluster, except) });
}

export default fp(provisioning, { name: 'provisioning', fastify: '5.x', dependencies: ['store', 'invalidation', 'metrics'] });
