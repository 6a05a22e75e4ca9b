// The control plane as a Fastify app, built with everything it needs injected: the database,
// an optional Redis client, the token lists and the logger. Tests build it directly; main.ts
// builds it from the environment and listens. The caller owns the database and Redis client
// and closes them after `app.close()`.
import Fastify, { type FastifyBaseLogger, type FastifyInstance, type FastifyServerOptions } from 'fastify';
import type { Redis } from 'ioredis';
import { loggerOptions } from '@tenantgate/runtime';
import type { Database } from './db/database.ts';
import { validationError } from './errors.ts';
import { jsonDepthExceeds, MAX_JSON_DEPTH } from './json-depth.ts';
import authPlugin from './plugins/auth.ts';
import docsPlugin from './plugins/docs.ts';
import errorsPlugin from './plugins/errors.ts';
import invalidationPlugin from './plugins/invalidation.ts';
import certificateRoutes from './routes/certificates.ts';
import clusterRoutes from './routes/clusters.ts';
import provisioningPlugin, { type ComputeSettings } from './plugins/provisioning.ts';
import type { CertificateIssuer } from './certificate-issuer.ts';
import metricsPlugin from './plugins/metrics.ts';
import terminationsPlugin from './plugins/terminations.ts';
import schemasPlugin from './plugins/schemas.ts';
import storePlugin from './plugins/store.ts';
import healthRoutes from './routes/health.ts';
import routeRoutes from './routes/routes.ts';
import tenantRoutes from './routes/tenants.ts';

export type { Database, DatabaseKind, Queryable } from './db/database.ts';
export { createPostgresDatabase, type PostgresDatabaseOptions } from './db/postgres.ts';
export { openPgliteDatabase } from './db/pglite.ts';
export { migrate, MIGRATIONS, type Migration, type MigrationResult } from './db/migrations.ts';
export { createRedisClient, type RedisClientOptions } from './redis.ts';
export { dropCachedRoute } from './invalidation.ts';
export { ErrorCode } from './errors.ts';
export { createMetrics as createControlPlaneMetrics, MetricName } from './metrics.ts';
export { CertificateIssuer } from './certificate-issuer.ts';
export { SCRAM_ITERATIONS } from './passwords.ts';
export { verifyComputeSignature, SIGNATURE_HEADER as COMPUTE_SIGNATURE_HEADER } from './compute/webhook.ts';
export type { ComputeSettings } from './plugins/provisioning.ts';

/** Request bodies larger than this get 413. */
export const DEFAULT_BODY_LIMIT = 1024 * 1024;

/** Fields of log lines that may hold credentials: the one list of both apps. */
export { REDACT_PATHS } from '@tenantgate/runtime';

export interface BuildAppOptions {
  readonly database: Database;
  /** Invalidations are published here; absent: nothing is published (no outbox rows kept). */
  readonly redis?: Redis;
  /** At least one. */
  readonly adminTokens: readonly string[];
  readonly gatewayTokens?: readonly string[];
  /** Tenants whose backend is on a loopback or link-local address are refused unless this is true. */
  readonly allowLocalBackends?: boolean;
  /** CONTROL_PLANE_SECRETS_DIR: clusters' admin credentials; absent: no clusters, nothing provisioned. */
  readonly secretsDir?: string;
  /** How often the provisioner looks for jobs left by others and due retries (default 2000 ms). */
  readonly provisioningPollMs?: number;
  /** CONTROL_PLANE_COMPUTE_*: how sleeping tenants' computes are woken and idle ones suspended. */
  readonly compute?: ComputeSettings;
  /** How often idle tenants are looked for (default 1000 ms). */
  readonly idleCheckMs?: number;
  /** The CA that signs client certificates (CONTROL_PLANE_CA_CERT / _KEY); absent: none are issued. */
  readonly issuer?: CertificateIssuer;
  /** pino options (or false, the default, for none); ignored when loggerInstance is given. */
  readonly logger?: boolean | FastifyLoggerOptions;
  readonly loggerInstance?: FastifyBaseLogger;
  readonly bodyLimit?: number;
  /** Apply pending migrations when the app starts; default true. */
  readonly migrate?: boolean;
  /** Retry and poll timing of the invalidation publisher (defaults: 100 ms to 5 s, poll 5 s). */
  readonly invalidation?: {
    readonly minRetryDelayMs?: number;
    readonly maxRetryDelayMs?: number;
    readonly pollIntervalMs?: number;
  };
}

type FastifyLoggerOptions = Exclude<FastifyServerOptions['logger'], boolean | undefined | FastifyBaseLogger>;

const JSON_TYPES = ['application/json', 'application/merge-patch+json'];

export function buildApp(options: BuildAppOptions): FastifyInstance {
  if (options.adminTokens.length === 0) throw new TypeError('buildApp: at least one admin token is required');
  const bodyLimit = options.bodyLimit ?? DEFAULT_BODY_LIMIT;
  const app = Fastify({
    ...loggerOf(options),
    bodyLimit,
    // Fastify's own 503 while closing has another body shape; /readyz says "closing" instead, and
    // requests on open connections are still served while the app drains.
    return503OnClosing: false,
    // Bodies are taken as sent: no type coercion, no silently dropped unknown fields.
    ajv: { customOptions: { coerceTypes: false, removeAdditional: false } },
  }) as unknown as FastifyInstance;

  // JSON only (415 for anything else, text/plain included).
  app.removeAllContentTypeParsers();
  // A body nested deeper than any record goes is refused before a route walks it recursively.
  const parseJson = app.getDefaultJsonParser('error', 'error');
  app.addContentTypeParser(JSON_TYPES, { parseAs: 'string' }, (request, body: string, done) =>
    parseJson(request, body, (error, value) => {
      if (error !== null) return done(error, undefined);
      if (jsonDepthExceeds(value, MAX_JSON_DEPTH)) {
        return done(validationError('body', [{ path: '', message: `is nested deeper than ${MAX_JSON_DEPTH} levels` }]), undefined);
      }
      done(null, value);
    }),
  );

  void app.register(errorsPlugin, { bodyLimit });
  void app.register(schemasPlugin);
  void app.register(docsPlugin);
  void app.register(storePlugin, {
    database: options.database,
    outbox: options.redis !== undefined,
    migrate: options.migrate,
  });
  void app.register(authPlugin, { adminTokens: options.adminTokens, gatewayTokens: options.gatewayTokens ?? [] });
  void app.register(metricsPlugin);
  void app.register(invalidationPlugin, { redis: options.redis, ...options.invalidation });
  void app.register(terminationsPlugin, { redis: options.redis });
  void app.register(provisioningPlugin, {
    secretsDir: options.secretsDir,
    pollIntervalMs: options.provisioningPollMs,
    compute: options.compute,
    redis: options.redis,
    idleCheckMs: options.idleCheckMs,
  });
  void app.register(healthRoutes);
  void app.register(tenantRoutes, {
    allowLocalBackends: options.allowLocalBackends ?? false,
    issuesCertificates: options.issuer !== undefined,
  });
  void app.register(clusterRoutes, { allowLocalBackends: options.allowLocalBackends ?? false });
  void app.register(routeRoutes, { issuerCaPem: options.issuer?.caCertificatePem });
  void app.register(certificateRoutes, { issuer: options.issuer });
  return app;
}

function loggerOf(options: BuildAppOptions): Pick<FastifyServerOptions, 'logger' | 'loggerInstance'> {
  if (options.loggerInstance !== undefined) return { loggerInstance: options.loggerInstance };
  const { logger = false } = options;
  // The pino setup of both apps (libs/runtime): level names, ISO times, the shared redaction list.
  if (typeof logger === 'boolean') return { logger: logger && loggerOptions() };
  return { logger: { ...loggerOptions(), ...logger } };
}
