// The control plane process: configuration from the environment, the store (PostgreSQL or an
// embedded PGlite) and Redis opened, the app built and listening. SIGTERM/SIGINT close it
// gracefully: start-up (a PGlite initdb, migrations) is let finish, in-flight requests finish,
// then Redis and the store close, and the process exits 0.
import {
  createLogger,
  describeListenFailure,
  describeSystemError,
  readPemSource,
  startTracing,
  type Logger,
  type Tracing,
} from '@tenantgate/runtime';
import type { FastifyInstance } from 'fastify';
import type { Redis } from 'ioredis';
import { buildApp } from './app.ts';
import { CertificateIssuer } from './certificate-issuer.ts';
import { ConfigError, helpText, loadConfig, type ControlPlaneConfig } from './config.ts';
import type { Database } from './db/database.ts';
import { createPostgresDatabase } from './db/postgres.ts';
import { openPgliteDatabase } from './db/pglite.ts';
import { createRedisClient } from './redis.ts';
import { StartupError } from './errors.ts';

/** Exit status of a configuration error (as the gateway's). */
const EXIT_CONFIG = 2;

/** What start-up opened, closed in reverse on the way out. */
interface Resources {
  tracing?: Tracing | undefined;
  database?: Database;
  redis?: Redis;
  app?: FastifyInstance;
}

async function main(): Promise<void> {
  if (process.argv.includes('--help') || process.argv.includes('-h')) {
    process.stdout.write(`${helpText()}\n`);
    return;
  }
  const config = await configOrReport();
  if (config === undefined) {
    process.exitCode = EXIT_CONFIG;
    return;
  }
  const logger = createLogger({ level: config.logLevel });
  // Before the app is built: the Fastify instrumentation attaches to it as it initializes, and
  // continues the gateways' traces from their traceparent header.
  const resources: Resources = {
    tracing: await startTracing({
      serviceName: 'tenantgate-control-plane',
      instrumentations: async () => [new (await import('@fastify/otel')).FastifyOtelInstrumentation({ registerOnInitialization: true })],
    }),
  };
  // Handlers first: a signal that came before them would kill the process mid-start (a PGlite
  // initdb, a migration) instead of letting it finish and close.
  let closing: Promise<void> | undefined;
  const stop = (signal: string) => {
    closing ??= shutdown(signal, started, resources, logger);
  };
  process.once('SIGTERM', () => stop('SIGTERM'));
  process.once('SIGINT', () => stop('SIGINT'));
  const started = start(config, logger, resources);
  try {
    await started;
  } catch (error) {
    if (error instanceof StartupError) {
      // One line for the person starting it, no stack: the variable says what to fix.
      process.stderr.write(`${error.message}\n`);
      logger.fatal({ code: error.code, variable: error.variable, reason: error.message }, 'the control plane could not start');
    } else {
      logger.fatal({ err: error }, 'the control plane could not start');
    }
    await close(resources).catch((cause: unknown) => logger.error({ err: cause }, 'closing after the failed start failed'));
    logger.flush();
    process.exitCode = 1;
  }
}

/** The configuration, or undefined after one line per bad variable on stderr. */
async function configOrReport(): Promise<ControlPlaneConfig | undefined> {
  try {
    return await loadConfig(process.env);
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error;
    const lines = error.issues.map((i) => `tenantgate control-plane: ${i.variable}: ${i.message} (see --help)`);
    process.stderr.write(`${lines.join('\n')}\n`);
    return undefined;
  }
}

/** The issuing CA, read and checked whole: a key that is not the certificate's stops start-up. */
async function loadIssuer(sources: NonNullable<ControlPlaneConfig['issuingCa']>): Promise<CertificateIssuer> {
  let certPem: string;
  let keyPem: string;
  try {
    certPem = await readPemSource(sources.cert);
  } catch (error) {
    throw new StartupError('CONTROL_PLANE_CA_CERT', (error as Error).message, { cause: error });
  }
  try {
    keyPem = await readPemSource(sources.key);
  } catch (error) {
    throw new StartupError('CONTROL_PLANE_CA_KEY', (error as Error).message, { cause: error });
  }
  try {
    return await CertificateIssuer.load(certPem, keyPem);
  } catch (error) {
    throw new StartupError('CONTROL_PLANE_CA_CERT', (error as Error).message, { cause: error });
  }
}

async function start(config: ControlPlaneConfig, logger: Logger, resources: Resources): Promise<void> {
  const issuer = config.issuingCa === undefined ? undefined : await loadIssuer(config.issuingCa);
  resources.database = await openDatabase(config, logger);
  resources.redis = config.redisUrl === undefined ? undefined : createRedisClient(config.redisUrl);
  resources.app = buildApp({
    database: resources.database,
    redis: resources.redis,
    adminTokens: config.adminTokens,
    gatewayTokens: config.gatewayTokens,
    allowLocalBackends: config.allowLocalBackends,
    ...(config.secretsDir === undefined ? {} : { secretsDir: config.secretsDir }),
    ...(config.compute === undefined ? {} : { compute: config.compute }),
    ...(issuer === undefined ? {} : { issuer }),
    loggerInstance: logger,
  });
  try {
    await resources.app.listen({ host: config.listen.host, port: config.listen.port });
  } catch (error) {
    const reason = describeListenFailure(error, config.listen);
    throw reason === undefined ? error : new StartupError('CONTROL_PLANE_LISTEN', reason, { cause: error });
  }
  logger.info(
    { store: config.store.kind, redis: resources.redis !== undefined, address: resources.app.addresses() },
    'control plane ready',
  );
}

async function openDatabase(config: ControlPlaneConfig, logger: Logger): Promise<Database> {
  if (config.store.kind === 'postgres') {
    const database = createPostgresDatabase({
      connectionString: config.store.url,
      onError: (error) => logger.warn({ err: error }, 'a pooled database connection failed'),
    });
    await checkConnection(database, config.store.url);
    return database;
  }
  logger.info({ dataDir: config.store.dataDir }, 'using the embedded PGlite store');
  return openPgliteDatabase(config.store.dataDir);
}

/** One query, so an unreachable DATABASE_URL is named at start rather than by the first migration. */
async function checkConnection(database: Database, url: string): Promise<void> {
  try {
    await database.query('select 1');
  } catch (error) {
    await database.close();
    // The host and port only: the URL may hold a password.
    const { hostname, port } = new URL(url);
    throw new StartupError('DATABASE_URL', `cannot connect to ${hostname || 'localhost'}:${port || 5432}: ${describeSystemError(error)}`, {
      cause: error,
    });
  }
}

async function shutdown(signal: string, started: Promise<void>, resources: Resources, logger: Logger): Promise<void> {
  logger.info({ signal }, 'closing');
  // A failed start is reported (and cleaned up) by main.
  if (
    !(await started.then(
      () => true,
      () => false,
    ))
  )
    return;
  try {
    await close(resources);
    logger.info('stopped');
  } catch (error) {
    logger.error({ err: error }, 'closing failed');
    process.exitCode = 1;
  }
  logger.flush();
}

/** The app first (it stops taking requests and stops the publisher), then what it used. */
async function close({ app, redis, database, tracing }: Resources): Promise<void> {
  try {
    await app?.close();
  } finally {
    redis?.disconnect();
    await database?.close();
    await tracing?.shutdown();
  }
}

await main();
