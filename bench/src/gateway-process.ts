// The gateway as `npm run gateway` runs it: its own Node process configured by GATEWAY_*
// variables, with a static tenants file of one tenant whose backend is the bench PostgreSQL over
// mutual TLS. The backend checks the gateway by SCRAM with the keys recovered from the client's
// proof, so the tenant's role carries the backend's own secret (copied from pg_authid).
import type { ChildProcess } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { getFreePort } from '@tenantgate/testing';
import { startServer, stopServer, waitForPort, type Cleanup } from './processes.ts';

const MAIN = fileURLToPath(new URL('../../apps/gateway/src/main.ts', import.meta.url));

export const SNI_SUFFIX = '.db.example.test';

/** Paths of the PEM files a proxy of the bench serves and presents. */
export interface ProxyPemFiles {
  /** The certificate clients see, and its key. */
  readonly edgeCert: string;
  readonly edgeKey: string;
  /** The CA that signed PostgreSQL's certificate. */
  readonly ca: string;
  /** The client certificate presented to PostgreSQL (mutual TLS), and its key. */
  readonly clientCert: string;
  readonly clientKey: string;
}

export interface GatewayProcessOptions {
  /** Directory for the tenants file and the log. */
  readonly dir: string;
  /** Each with the one role below. */
  readonly tenants: readonly { readonly id: string; readonly backend: { readonly host: string; readonly port: number } }[];
  readonly role: { readonly name: string; readonly scramSecret: string };
  readonly files: ProxyPemFiles;
  /** GATEWAY_WORKERS; default 1. With more, the CPU rows count every worker, the RSS rows the primary only. */
  readonly workers?: number;
  /** The gateway's LOG_LEVEL; `info` (its default) logs every session's start and end, as PgBouncer does. */
  readonly logLevel: string;
  /** NODE_OPTIONS for the gateway process (`--cpu-prof --cpu-prof-dir=...` to profile it); empty for none. */
  readonly nodeOptions: string;
  /** REDIS_URL: cancel keys and the tenant's limits in Redis, as in a fleet; undefined for none. */
  readonly redisUrl?: string | undefined;
  /** OTEL_EXPORTER_OTLP_ENDPOINT: traces on, sent there; undefined for off. */
  readonly otlpEndpoint?: string | undefined;
}

export interface GatewayProcess {
  readonly child: ChildProcess;
  readonly pid: number;
  readonly port: number;
  /** Its admin port (/metrics). */
  readonly adminPort: number;
  readonly logFile: string;
}

/** Starts the gateway and registers its stop (SIGTERM: drain for a second, exit) with `cleanup`. */
export async function startGatewayProcess(options: GatewayProcessOptions, cleanup: Cleanup): Promise<GatewayProcess> {
  const tenantsFile = join(options.dir, 'tenants.json');
  await writeFile(tenantsFile, JSON.stringify({ tenants: options.tenants.map((tenant) => tenantRecord(tenant, options.role)) }, null, 2));
  const logFile = join(options.dir, 'gateway.log');
  await writeFile(logFile, '');
  // A port picked here rather than read from the `gateway listening` line: that line is not
  // written at LOG_LEVEL=warn, which a run may choose to take logging out of the comparison.
  const port = await getFreePort();
  const adminPort = await getFreePort();
  const child = startServer(process.execPath, ['--conditions=@tenantgate/source', MAIN], {
    cwd: options.dir,
    env: gatewayEnvironment(options, tenantsFile, port, adminPort),
    logFile,
  });
  cleanup.add(() => stopServer(child, 'SIGTERM'));
  await waitForPort(child, port, logFile, 'the gateway');
  return { child, pid: child.pid!, port, adminPort, logFile };
}

function tenantRecord(tenant: GatewayProcessOptions['tenants'][number], role: GatewayProcessOptions['role']): object {
  return {
    id: tenant.id,
    backend: { host: tenant.backend.host, port: tenant.backend.port },
    roles: [{ name: role.name, scramSecret: role.scramSecret }],
    // Well above anything the bench opens: the limits are not what is measured.
    limits: { maxConnections: 1_000_000, connectsPerSecond: 1_000_000 },
  };
}

function gatewayEnvironment(options: GatewayProcessOptions, tenantsFile: string, port: number, adminPort: number): NodeJS.ProcessEnv {
  const { files } = options;
  return {
    PATH: process.env.PATH ?? '',
    GATEWAY_LISTEN: `127.0.0.1:${port}`,
    // One process by default: its RSS is what the idle-session figures read.
    GATEWAY_WORKERS: String(options.workers ?? 1),
    // Read once, after the connection rows, for the phase histogram; not scraped while measuring.
    GATEWAY_ADMIN_LISTEN: `127.0.0.1:${adminPort}`,
    GATEWAY_TLS_CERT: files.edgeCert,
    GATEWAY_TLS_KEY: files.edgeKey,
    GATEWAY_SNI_SUFFIXES: SNI_SUFFIX,
    GATEWAY_TENANTS_FILE: tenantsFile,
    GATEWAY_BACKEND_CA: files.ca,
    GATEWAY_BACKEND_CLIENT_CERT: files.clientCert,
    GATEWAY_BACKEND_CLIENT_KEY: files.clientKey,
    GATEWAY_DRAIN_SECONDS: '1',
    // Every bench client comes from 127.0.0.1: the per-address limits would measure themselves.
    GATEWAY_MAX_PENDING_PER_ADDRESS: '1000',
    GATEWAY_CONNECTS_PER_SECOND_PER_ADDRESS: '0',
    LOG_LEVEL: options.logLevel,
    ...(options.nodeOptions === '' ? {} : { NODE_OPTIONS: options.nodeOptions }),
    ...(options.redisUrl === undefined ? {} : { REDIS_URL: options.redisUrl }),
    ...(options.otlpEndpoint === undefined ? {} : { OTEL_EXPORTER_OTLP_ENDPOINT: options.otlpEndpoint }),
  };
}

const PROBLEM_LEVELS = new Set<unknown>(['warn', 'error', 'fatal', 40, 50, 60]);

/** Log lines at warn or above (level names, or pino's numbers 40+): what went wrong during the run, if anything. */
export function gatewayProblems(log: string): string[] {
  return log.split('\n').filter((line) => PROBLEM_LEVELS.has(levelOf(line)));
}

function levelOf(line: string): unknown {
  try {
    return (JSON.parse(line) as { level?: unknown }).level;
  } catch {
    // Not a JSON line (a crash's stack trace): worth reporting as is.
    return line.trim() === '' ? undefined : 'error';
  }
}
