// The gateway process: configuration from the environment, files read, the gateway and its
// admin server started, and signals: SIGTERM/SIGINT drain and exit, SIGHUP reloads
// certificates, client certificates and the tenants file without dropping sessions (a changed
// certificate file reloads the certificates by itself).
// With GATEWAY_WORKERS > 1 this process becomes the primary (cluster.ts) and each worker runs
// this file again: it serves on the shared port (reusePort) and leaves the admin port to the primary.
// Map: docs/architecture.md, "Drain and shutdown".
import cluster from 'node:cluster';
import { X509Certificate } from 'node:crypto';
import { AggregatorRegistry } from 'prom-client';
import { createGateway, type Gateway } from './app.ts';
import {
  adminProxyProtocol,
  answerSessionRequests,
  CertificateFiles,
  DRAINING,
  READY,
  readinessMonitor,
  startAdminServer,
  TerminationListener,
  type AdminServer,
} from './ops/index.ts';
import {
  describeListenFailure,
  describeSystemError,
  startTracing,
  type Tracing,
  PemReadError,
  readPemSource,
  type ListenAddress,
  type PemSource,
} from '@tenantgate/runtime';
import { ConfigError, helpText, loadConfig, type GatewayConfig, type VariableName } from './config/index.ts';
import { createLogger, logClientEvent, type Logger } from './telemetry/index.ts';
import { Redis } from 'ioredis';
import { createMetrics } from './telemetry/index.ts';
import { StartupError, TenantsFileError } from './errors.ts';
import type { CertificateInput } from './edge/index.ts';
import { TenantsFileDirectory } from './tenants/index.ts';
import { ControlPlaneDirectory } from './tenants/index.ts';
import type { TenantDirectory } from './tenants/index.ts';
import type { GatewayMetrics } from './telemetry/index.ts';
import type { BackendTlsDefaults } from './backend/index.ts';
import {
  ClusterCancelKeyStore,
  ClusterMessage,
  MemoryCancelKeyStore,
  RedisCancelKeyStore,
  type CancelKeyStore,
  type WorkerChannel,
} from './cancel/index.ts';
import { runPrimary } from './ops/index.ts';
import { RedisFleetLimits, type FleetLimits } from './limits/index.ts';

async function main(): Promise<void> {
  if (process.argv.includes('--help') || process.argv.includes('-h')) {
    process.stdout.write(`${helpText()}\n`);
    return;
  }
  const config = configOrExit();
  const logger = createLogger({ level: config.logLevel });
  try {
    if (config.workers > 1 && cluster.isPrimary) await runPrimary(config, logger, readinessMonitor(config, logger, connectRedis));
    else await serve(config, cluster.isWorker ? logger.child({ worker: cluster.worker?.id }) : logger, await startGatewayTracing());
  } catch (error) {
    if (error instanceof StartupError) {
      // One line for the person starting the gateway, no stack: the variable says what to fix.
      process.stderr.write(`${error.message}\n`);
      logger.fatal({ code: error.code, variable: error.variable, reason: error.message }, 'the gateway could not start');
    } else {
      logger.fatal({ err: error }, 'the gateway could not start');
    }
    // Exit now: an open Redis connection or a worker's IPC channel would keep a failed process
    // alive, and its primary would never learn to replace it. pino flushes at exit.
    process.exit(1);
  }
}

function configOrExit(): GatewayConfig {
  try {
    const config = loadConfig(process.env);
    if (config.workers > 1 && config.listen.port === 0) {
      throw new ConfigError([
        { variable: 'GATEWAY_LISTEN', message: 'workers share one port: give a port other than 0 when GATEWAY_WORKERS > 1' },
      ]);
    }
    return config;
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error;
    process.stderr.write(`tenantgate gateway: invalid configuration (see --help)\n${error.message}\n`);
    process.exit(2);
  }
}

/**
 * Traces, when the OTEL_* variables ask for them: the connection spans of session.ts, and under
 * them the control-plane requests (undici's instrumentation) and Redis commands (redisSpan).
 */
function startGatewayTracing(): Promise<Tracing | undefined> {
  return startTracing({
    serviceName: 'tenantgate-gateway',
    instrumentations: async () => [new (await import('@opentelemetry/instrumentation-undici')).UndiciInstrumentation()],
  });
}

async function serve(config: GatewayConfig, logger: Logger, tracing: Tracing | undefined): Promise<void> {
  const metrics = createMetrics();
  const worker = cluster.isWorker;
  if (worker) {
    // The primary asks each worker for its registry and serves the sum on the admin port.
    new AggregatorRegistry();
    AggregatorRegistry.setRegistries(metrics.registry);
  }
  const tenants = await openTenantDirectory(config, metrics, logger);
  const certificates = await readCertificates(config);
  const backendDefaults = await readBackendDefaults(config);
  const gateway = await listening('GATEWAY_LISTEN', config.listen, () =>
    createGateway({
      settings: { ...config, backendTlsMinVersion: config.backend.minVersion },
      certificates,
      backendDefaults,
      tenants,
      logger,
      metrics,
      ...(worker ? { reusePort: true } : {}),
      ...openCancelStore(config, worker, logger),
      ...openFleetLimits(config, metrics, logger),
    }),
  );
  let ready = true;
  const adminListen = worker ? undefined : config.adminListen;
  // With several workers the primary asks the control plane; a worker leaves readiness to it.
  const monitor = worker ? undefined : readinessMonitor(config, logger, connectRedis);
  const admin =
    adminListen === undefined
      ? undefined
      : await listening('GATEWAY_ADMIN_LISTEN', adminListen, () =>
          startAdminServer({
            listen: adminListen,
            metrics: metrics.registry,
            readiness: () => (ready ? (monitor?.state ?? READY) : DRAINING),
            logger,
            proxyProtocol: adminProxyProtocol(config.proxyProtocol),
            sessions: {
              list: async (tenantId) => gateway.listSessions(tenantId),
              terminate: async (id) => gateway.terminateSessions({ id }),
              trace: async (id, options) => gateway.traceSession(id, options),
              traceTenant: async (tenantId, connections, options) => {
                gateway.traceTenant(tenantId, connections, options);
                return 1;
              },
            },
            tokens: config.adminTokens,
          }),
        );
  const directory =
    tenants instanceof TenantsFileDirectory
      ? { tenants: tenants.size }
      : { controlPlane: config.tenantSource.kind, redis: config.redisUrl !== undefined };
  logger.info({ listen: gateway.address, admin: admin?.address, ...directory }, 'gateway listening');
  void monitor?.start();
  if (config.proxyProtocol !== 'off' && config.proxyTrustedCidrs === undefined && !worker) {
    logger.warn(
      { proxyProtocol: config.proxyProtocol },
      'GATEWAY_PROXY_TRUSTED_CIDRS is unset: any peer that reaches the port may send a PROXY header and claim any client address',
    );
  }
  if (worker) {
    answerSessionRequests(process, {
      list: (tenantId) => gateway.listSessions(tenantId),
      terminate: (which) => gateway.terminateSessions(which),
      traceSession: (id, options) => gateway.traceSession(id, options),
      traceTenant: (tenantId, connections, options) => gateway.traceTenant(tenantId, connections, options),
    });
    process.send?.({ type: ClusterMessage.Listening });
  }
  recordEdgeExpiries(metrics, certificates);
  recordBackendExpiries(metrics, backendDefaults);
  process.on('SIGHUP', () => void reload(config, gateway, tenants, metrics, logger));
  const termination = openTermination(config, gateway, logger);
  const certificateFiles = new CertificateFiles({
    paths: certificatePaths(config),
    reload: () => reloadCertificates(config, gateway, metrics, logger),
  });
  let stopping = false;
  const stop = (signal: string) => {
    // A terminal's Ctrl-C reaches a worker both from the terminal and from the primary.
    if (stopping) return;
    stopping = true;
    ready = false;
    metrics.draining.set(1);
    certificateFiles.close();
    termination?.close();
    void shutdown(signal, config, gateway, admin, logger).finally(() => Promise.all([monitor?.close(), tracing?.shutdown()]));
  };
  process.once('SIGTERM', () => stop('SIGTERM'));
  process.once('SIGINT', () => stop('SIGINT'));
}

/** Runs a start-up step that listens on `address`; a failure to listen names `variable`. */
async function listening<T>(variable: VariableName, address: ListenAddress, start: () => Promise<T>): Promise<T> {
  try {
    return await start();
  } catch (error) {
    const reason = describeListenFailure(error, address);
    throw reason === undefined ? error : new StartupError(variable, reason, { cause: error });
  }
}

/** The PEM text of a certificate variable; a file that cannot be read names the variable. */
async function readPem(source: PemSource, variable: VariableName): Promise<string> {
  try {
    return await readPemSource(source);
  } catch (error) {
    throw error instanceof PemReadError ? new StartupError(variable, error.message, { cause: error }) : error;
  }
}

async function readCertificates(config: GatewayConfig): Promise<CertificateInput[]> {
  return Promise.all(
    (config.tls?.certificates ?? []).map(async (c) => ({
      suffixes: c.suffixes,
      certPem: await readPem(c.cert, 'GATEWAY_TLS_CERT'),
      keyPem: await readPem(c.key, 'GATEWAY_TLS_KEY'),
    })),
  );
}

async function readBackendDefaults(config: GatewayConfig): Promise<Partial<BackendTlsDefaults>> {
  const { ca, client } = config.backend;
  return {
    ...(ca === undefined ? {} : { caPem: await readPem(ca, 'GATEWAY_BACKEND_CA') }),
    ...(client === undefined
      ? {}
      : {
          clientCertificate: {
            certPem: await readPem(client.cert, 'GATEWAY_BACKEND_CLIENT_CERT'),
            keyPem: await readPem(client.key, 'GATEWAY_BACKEND_CLIENT_KEY'),
          },
        }),
  };
}

/**
 * Where cancel keys live: the workers' shared store with several workers, and Redis too when
 * REDIS_URL is set, so that a CancelRequest reaching any gateway of the fleet finds its session.
 */
function openCancelStore(config: GatewayConfig, worker: boolean, logger: Logger): { cancelStore?: CancelKeyStore } {
  const local = worker ? new ClusterCancelKeyStore(process as WorkerChannel) : undefined;
  if (config.redisUrl === undefined) return local === undefined ? {} : { cancelStore: local };
  // Fail fast: a command while Redis is down fails at once and the local store answers alone.
  const redis = connectRedis(config.redisUrl);
  redis.on('error', (err: Error) => logClientEvent(logger, 'warn', { err }, 'cancel keys: Redis connection failed'));
  const cancelStore = new RedisCancelKeyStore({
    redis,
    local: local ?? new MemoryCancelKeyStore(),
    onError: (operation, err) => logClientEvent(logger, 'warn', { operation, err }, 'cancel keys: Redis command failed'),
  });
  return { cancelStore };
}

/**
 * With REDIS_URL set, tenants' connection caps and connect rates hold across every gateway of the
 * fleet; while Redis cannot be asked, each process enforces them alone, says so once in the log,
 * and sets tenantgate_fleet_limits_lost.
 */
function openFleetLimits(config: GatewayConfig, metrics: GatewayMetrics, logger: Logger): { fleetLimits?: FleetLimits } {
  if (config.redisUrl === undefined) return {};
  const redis = connectRedis(config.redisUrl);
  const fleetLimits = new RedisFleetLimits({
    redis,
    leaseMs: config.fleetLeaseMs,
    onLost: (err) => {
      metrics.fleetLimitsLost.set(1);
      logger.error({ err }, "tenant limits: Redis cannot be asked; this gateway enforces tenants' connection caps and rates alone");
    },
    onRegained: () => {
      metrics.fleetLimitsLost.set(0);
      logger.info("tenant limits: Redis answers again; tenants' connection caps and rates hold across the fleet");
    },
  });
  return { fleetLimits };
}

/** With REDIS_URL, the control plane's terminate-sessions requests reach this process. */
function openTermination(config: GatewayConfig, gateway: Gateway, logger: Logger): TerminationListener | undefined {
  if (config.redisUrl === undefined) return undefined;
  // Queued until connected (and subscribed again after each reconnect), unlike the fail-fast connections.
  const subscriber = new Redis(config.redisUrl, { maxRetriesPerRequest: null });
  subscriber.on('error', () => {});
  return new TerminationListener({
    subscriber,
    commands: connectRedis(config.redisUrl),
    terminate: (tenantId) => gateway.terminateSessions({ tenantId }),
    logger: logger.child({ component: 'termination' }),
  });
}

/**
 * A Redis connection that fails fast: a command while Redis is down fails at once (the caller
 * carries on without it) instead of queueing. Its own errors repeat while it reconnects, so it
 * reports nothing itself; each user says what matters to it.
 */
function connectRedis(url: string): Redis {
  const redis = new Redis(url, { enableOfflineQueue: false, maxRetriesPerRequest: 0, commandTimeout: 500 });
  redis.on('error', () => {});
  return redis;
}

/** The static tenants file, or the control plane behind the resolver (Redis shared when REDIS_URL is set). */
async function openTenantDirectory(config: GatewayConfig, metrics: GatewayMetrics, logger: Logger): Promise<TenantDirectory> {
  const source = config.tenantSource;
  if (source.kind === 'file') return openTenantsFile(source.path);
  // Routes carry role secrets: say so when they would cross a network in the clear.
  const { protocol, hostname } = new URL(source.url);
  if (protocol === 'http:' && !['127.0.0.1', 'localhost', '[::1]'].includes(hostname)) {
    logger.warn({ controlPlane: source.url }, 'GATEWAY_CONTROL_PLANE_URL is plain http: routes, role secrets included, travel unencrypted');
  }
  return new ControlPlaneDirectory({
    controlPlaneUrl: source.url,
    controlPlaneToken: source.token,
    ...(config.redisUrl === undefined ? {} : { redisUrl: config.redisUrl }),
    metrics,
    logger: logger.child({ component: 'resolver' }),
  });
}

/** The static tenants file; one that cannot be read or is not valid names GATEWAY_TENANTS_FILE. */
async function openTenantsFile(path: string): Promise<TenantsFileDirectory> {
  try {
    return await TenantsFileDirectory.open(path);
  } catch (error) {
    if (!(error instanceof TenantsFileError)) throw error;
    // Only a failed read has a cause; the other messages say where in the file it is wrong.
    const reason = error.cause === undefined ? error.message : `cannot read ${path}: ${describeSystemError(error.cause)}`;
    throw new StartupError('GATEWAY_TENANTS_FILE', reason.replaceAll('\n', '; '), { cause: error });
  }
}

async function reload(
  config: GatewayConfig,
  gateway: Gateway,
  tenants: TenantDirectory,
  metrics: GatewayMetrics,
  logger: Logger,
): Promise<void> {
  await reloadCertificates(config, gateway, metrics, logger);
  gateway.reloadSecrets();
  // The control plane's changes arrive by invalidation; only a file is read again.
  if (!(tenants instanceof TenantsFileDirectory)) return;
  const result = await tenants.reload();
  if (result.ok) logger.info({ tenants: result.count }, 'tenants file reloaded');
  else logger.error({ err: result.error }, 'tenants file reload failed; the previous tenants stay in use');
}

/**
 * The edge certificates, then the default backend CA and client certificate, each read and
 * loaded whole before it replaces what is in use: a part that fails keeps the old, with one line.
 */
async function reloadCertificates(config: GatewayConfig, gateway: Gateway, metrics: GatewayMetrics, logger: Logger): Promise<void> {
  await reloadPart(logger, 'edge certificates', async () => {
    const certificates = await readCertificates(config);
    gateway.reloadCertificates(certificates);
    recordEdgeExpiries(metrics, certificates);
  });
  await reloadPart(logger, 'backend CA and client certificate', async () => {
    const defaults = await readBackendDefaults(config);
    gateway.reloadBackendDefaults(defaults);
    recordBackendExpiries(metrics, defaults);
  });
}

/** One part of a reload, and its one line: reloaded, or failed with the previous one kept. */
async function reloadPart(logger: Logger, what: string, reload: () => Promise<void>): Promise<void> {
  try {
    await reload();
    logger.info(`${what} reloaded`);
  } catch (error) {
    logger.error({ err: error }, `${what} reload failed; the previous ones stay in use`);
  }
}

/** The files behind the certificate variables (PEM given in a variable cannot change). */
function certificatePaths(config: GatewayConfig): string[] {
  const { ca, client } = config.backend;
  const sources = [...(config.tls?.certificates ?? []).flatMap((c) => [c.cert, c.key]), ca, client?.cert, client?.key];
  return sources.flatMap((source) => (source?.kind === 'path' ? [source.path] : []));
}

function recordEdgeExpiries(metrics: GatewayMetrics, certificates: readonly CertificateInput[]): void {
  for (const name of [...metrics.certificateExpiries.keys()]) if (name.startsWith('edge:')) metrics.certificateExpiries.delete(name);
  for (const c of certificates) metrics.certificateExpiries.set(`edge:${c.suffixes.join(',')}`, notAfter(c.certPem));
}

function recordBackendExpiries(metrics: GatewayMetrics, defaults: Partial<BackendTlsDefaults>): void {
  const expiries = metrics.certificateExpiries;
  if (defaults.caPem === undefined) expiries.delete('backend_ca');
  else expiries.set('backend_ca', notAfter(defaults.caPem));
  if (defaults.clientCertificate === undefined) expiries.delete('backend_client');
  else expiries.set('backend_client', notAfter(defaults.clientCertificate.certPem));
}

/** When the first certificate of a PEM text expires, in ms since the epoch. */
function notAfter(pem: string): number {
  return new X509Certificate(pem).validToDate.getTime();
}

async function shutdown(
  signal: string,
  config: GatewayConfig,
  gateway: Gateway,
  admin: AdminServer | undefined,
  logger: Logger,
): Promise<void> {
  logger.info({ signal, sessions: gateway.activeSessions, drainSeconds: config.drainSeconds }, 'draining');
  await gateway.drain(config.drainSeconds * 1000);
  await gateway.close();
  await admin?.close();
  logger.info('stopped');
  logger.flush();
  // A worker's IPC channel would keep it alive.
  if (cluster.isWorker) process.disconnect();
}

await main();
