// The servers of the gateway comparison, started once per run: one PostgreSQL 15 with TLS
// (`hostssl ... scram-sha-256` for the bench role, so every path ends in the same SCRAM login),
// the gateway as its own process, and PgBouncer; and the libpq settings of the three paths a
// client (pgbench, psql) takes to it.
import { once } from 'node:events';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import {
  createTempDir,
  createTestPki,
  removeTempDir,
  startPostgres,
  startRedis,
  type PostgresServer,
  type TestPki,
} from '@tenantgate/testing';
import { SNI_SUFFIX, startGatewayProcess, type GatewayProcess } from './gateway-process.ts';
import { startPgBouncer, type PgBouncerProcess } from './pgbouncer.ts';
import { startTlsRelay, type RelayProcess } from './tls-relay.ts';
import { unprivilegedAccount, type Cleanup } from './processes.ts';

/** `relay`: a bare Node TLS-to-TLS pipe (tls-relay.ts), the floor of a proxy written in Node. */
export const PATHS = ['direct', 'PgBouncer', 'relay', 'gateway'] as const;
export type PathName = (typeof PATHS)[number];

export const BENCH_ROLE = 'bench';
export const BENCH_DATABASE = 'bench';
const PASSWORD = 'bench-password';
const TENANT = 'bench';
const POOLED_TENANT = 'bench-pooled';

export interface ClientPath {
  readonly name: PathName;
  /** libpq variables for pgbench and psql. */
  readonly env: NodeJS.ProcessEnv;
  /** The process idle sessions are held in (RSS measured); none for direct. */
  readonly pid: number | undefined;
  /** Its log, scanned for warnings after the run. */
  readonly logFile: string | undefined;
}

export interface GatewayStack {
  readonly postgres: PostgresServer;
  readonly paths: Readonly<Record<PathName, ClientPath>>;
  /**
   * The gateway to a second tenant whose backend is PgBouncer in transaction mode on the same
   * PostgreSQL: many idle sessions without a PostgreSQL backend each. Absent when not asked for.
   */
  readonly pooled: { readonly path: ClientPath; readonly backendPort: number } | undefined;
  /** The gateway's admin port's /metrics. */
  readonly gatewayMetricsUrl: string;
  /** A directory for the run's own files (COPY data). */
  readonly dir: string;
}

export interface StackOptions {
  /** Sessions held open at once by the idle-session measurement. */
  readonly maxSessions: number;
  /** Sessions the pooled tenant must hold (0: no pooled tenant). */
  readonly pooledSessions: number;
  /** The gateway's LOG_LEVEL and NODE_OPTIONS, and whether it has a redis-server (REDIS_URL). */
  readonly gateway: {
    readonly logLevel: string;
    readonly nodeOptions: string;
    readonly redis?: boolean;
    readonly tracing?: boolean;
    readonly workers?: number;
  };
}

/** Starts everything; every server and directory is registered with `cleanup` as soon as it exists. */
export async function startGatewayStack(options: StackOptions, cleanup: Cleanup): Promise<GatewayStack> {
  const pki = await createTestPki();
  const dir = createTempDir('bench', unprivilegedAccount());
  cleanup.add(() => removeTempDir(dir));
  const postgres = await startBenchPostgres(pki.backend, pki.ca.certPem, options.maxSessions);
  cleanup.add(() => postgres.stop());
  const { gateway, pgbouncer, relay, pooledBackend } = await startProxies(pki, postgres, dir, options, cleanup);
  const paths = {
    direct: { name: 'direct', env: libpqEnvironment('127.0.0.1', undefined, postgres.port), pid: undefined, logFile: undefined },
    PgBouncer: {
      name: 'PgBouncer',
      env: libpqEnvironment('127.0.0.1', undefined, pgbouncer.port),
      pid: pgbouncer.pid,
      logFile: pgbouncer.logFile,
    },
    relay: {
      name: 'relay',
      // The relay's certificate is not PostgreSQL's: SCRAM without channel binding on this path.
      env: { ...libpqEnvironment('127.0.0.1', undefined, relay.port), PGCHANNELBINDING: 'disable' },
      pid: relay.pid,
      logFile: undefined,
    },
    gateway: {
      name: 'gateway',
      env: libpqEnvironment(`${TENANT}${SNI_SUFFIX}`, '127.0.0.1', gateway.port),
      pid: gateway.pid,
      logFile: gateway.logFile,
    },
  } as const satisfies Record<PathName, ClientPath>;
  const pooled =
    pooledBackend === undefined
      ? undefined
      : {
          path: { ...paths.gateway, env: libpqEnvironment(`${POOLED_TENANT}${SNI_SUFFIX}`, '127.0.0.1', gateway.port) },
          backendPort: pooledBackend.port,
        };
  return { postgres, paths, dir, pooled, gatewayMetricsUrl: `http://127.0.0.1:${gateway.adminPort}/metrics` };
}

/** The gateway and PgBouncer, both logging in to PostgreSQL as the bench role with its own SCRAM secret. */
async function startProxies(
  pki: TestPki,
  postgres: PostgresServer,
  dir: string,
  options: StackOptions,
  cleanup: Cleanup,
): Promise<{ gateway: GatewayProcess; pgbouncer: PgBouncerProcess; relay: RelayProcess; pooledBackend: PgBouncerProcess | undefined }> {
  const [pgbouncerCert, client] = await Promise.all([
    pki.ca.issueServerCertificate({ dnsNames: ['localhost'], ipAddresses: ['127.0.0.1'] }),
    // The client certificate both proxies present to PostgreSQL (mutual TLS).
    pki.client(BENCH_ROLE),
  ]);
  const role = { name: BENCH_ROLE, scramSecret: await roleSecret(postgres) };
  const backend = { host: '127.0.0.1', port: postgres.port };
  const files = await writePemFiles(dir, {
    edgeCert: pki.edge.chainPem,
    edgeKey: pki.edge.keyPem,
    ca: pki.ca.certPem,
    clientCert: client.chainPem,
    clientKey: client.keyPem,
  });
  const pem = {
    serverCert: pgbouncerCert.chainPem,
    serverKey: pgbouncerCert.keyPem,
    ca: pki.ca.certPem,
    clientCert: client.chainPem,
    clientKey: client.keyPem,
  };
  let redisUrl: string | undefined;
  if (options.gateway.redis === true) {
    const redis = await startRedis();
    cleanup.add(() => redis.stop());
    redisUrl = redis.url;
  }
  const otlpEndpoint = options.gateway.tracing === true ? await startOtlpSink(cleanup) : undefined;
  // The pooled tenant's backend first: the gateway's tenants file names its port.
  const pooledBackend =
    options.pooledSessions === 0
      ? undefined
      : await startPgBouncer(
          {
            dir,
            name: 'pgbouncer-pooled',
            database: BENCH_DATABASE,
            role,
            backend,
            maxClients: options.pooledSessions,
            poolMode: 'transaction',
            clientCertificates: true,
            poolSize: 20,
            pem,
          },
          cleanup,
        );
  const tenants = [
    { id: TENANT, backend },
    ...(pooledBackend === undefined ? [] : [{ id: POOLED_TENANT, backend: { host: '127.0.0.1', port: pooledBackend.port } }]),
  ];
  // Both settled before going on: a failure of one must not leave the other starting unregistered.
  const [gateway, pgbouncer] = settled(
    await Promise.allSettled([
      startGatewayProcess({ dir, tenants, role, files, ...options.gateway, redisUrl, otlpEndpoint }, cleanup),
      startPgBouncer({ dir, database: BENCH_DATABASE, role, backend, maxClients: options.maxSessions, pem }, cleanup),
    ]),
  );
  const relay = await startTlsRelay({ dir, backendPort: postgres.port, files }, cleanup);
  return { gateway, pgbouncer, relay, pooledBackend };
}

function settled<A, B>([a, b]: [PromiseSettledResult<A>, PromiseSettledResult<B>]): [A, B] {
  if (a.status === 'rejected') throw a.reason;
  if (b.status === 'rejected') throw b.reason;
  return [a.value, b.value];
}

function startBenchPostgres(cert: { chainPem: string; keyPem: string }, caPem: string, maxSessions: number): Promise<PostgresServer> {
  return startPostgres({
    serverCert: cert.chainPem,
    serverKey: cert.keyPem,
    // Asks clients for a certificate: the proxies present theirs (mutual TLS), pgbench and psql none.
    clientCa: caPem,
    hba: [`hostssl all ${BENCH_ROLE} 127.0.0.1/32 scram-sha-256`],
    roles: [{ name: BENCH_ROLE, password: PASSWORD }],
    databases: [{ name: BENCH_DATABASE, owner: BENCH_ROLE }],
    settings: {
      // The idle sessions, the pgbench clients and the fixture's own superuser connections.
      max_connections: maxSessions + 50,
      // The fixture's 16MB would make pgbench -S read through the OS cache.
      shared_buffers: '256MB',
    },
  });
}

async function roleSecret(postgres: PostgresServer): Promise<string> {
  const rows = await postgres.sql<{ rolpassword: string }>('select rolpassword from pg_authid where rolname = $1', [BENCH_ROLE]);
  const secret = rows[0]?.rolpassword;
  if (secret === undefined) throw new Error(`role ${BENCH_ROLE} has no SCRAM secret`);
  return secret;
}

async function writePemFiles<K extends string>(dir: string, pems: Record<K, string>): Promise<Record<K, string>> {
  const paths = {} as Record<K, string>;
  for (const [name, pem] of Object.entries(pems) as [K, string][]) {
    paths[name] = join(dir, `${name}.pem`);
    await writeFile(paths[name], pem, { mode: 0o600 });
  }
  return paths;
}

/**
 * What libpq needs for one path, and nothing of the machine's own PG* variables or ~/.postgresql.
 * `host` gives the SNI (the tenant's name), `hostaddr` the address when they differ.
 */
function libpqEnvironment(host: string, hostaddr: string | undefined, port: number): NodeJS.ProcessEnv {
  return {
    PATH: process.env.PATH ?? '',
    LC_ALL: 'C',
    HOME: '/nonexistent',
    PGHOST: host,
    ...(hostaddr === undefined ? {} : { PGHOSTADDR: hostaddr }),
    PGPORT: String(port),
    PGUSER: BENCH_ROLE,
    PGPASSWORD: PASSWORD,
    PGDATABASE: BENCH_DATABASE,
    PGSSLMODE: 'require',
    // No Kerberos probe before the SSLRequest on any path.
    PGGSSENCMODE: 'disable',
    PGCONNECT_TIMEOUT: '10',
  };
}

/** OTLP export requests the sink has taken in this process: the proof that spans were sent. */
export let otlpExports = 0;

/** An OTLP/HTTP endpoint that takes every export with 200 and keeps nothing: tracing's cost without a collector's. */
async function startOtlpSink(cleanup: Cleanup): Promise<string> {
  const server = createServer((req, res) => {
    otlpExports++;
    req.resume();
    req.on('end', () => res.writeHead(200, { 'content-type': 'application/x-protobuf' }).end());
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  cleanup.add(() => new Promise<void>((resolve) => server.close(() => resolve())));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}
