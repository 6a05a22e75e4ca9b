// The apps as their own processes (apps/gateway/src/main.ts as `npm run gateway` runs it, and
// the control plane's main.ts), for tests of what only processes show: several instances
// sharing Redis, SIGKILL, the process's own environment (NODE_EXTRA_CA_CERTS). Their JSON log
// lines are collected for the test to wait on.
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { createInterface } from 'node:readline';
import type { TestContext } from 'node:test';
import { fileURLToPath } from 'node:url';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { createTestPki, getFreePort, type PostgresServer, type TestPki } from '@tenantgate/testing';
import { PASSWORD, scratchDir, startCertBackend, SUFFIX } from './harness.ts';

export const GATEWAY_MAIN = fileURLToPath(new URL('../../apps/gateway/src/main.ts', import.meta.url));
export const CONTROL_PLANE_MAIN = fileURLToPath(new URL('../../apps/control-plane/src/main.ts', import.meta.url));

export type LogLine = Record<string, unknown>;

export interface GatewayProcess extends AppProcess {
  /** The Postgres port, as Gateway's address, so the harness's clients take either. */
  readonly address: { readonly host: string; readonly port: number };
  readonly adminPort: number;
  /** A sample from the admin port's /metrics (0 when the series is absent). */
  metric(name: string, labels?: string): Promise<number>;
}

/**
 * The environment of a gateway on free ports of 127.0.0.1 serving the test PKI's edge
 * certificate, with its client certificate (CN `app`) for backends; `env` adds or overrides.
 */
export async function gatewayEnvironment(pki: TestPki, env: Record<string, string>): Promise<Record<string, string>> {
  const client = await pki.client('app');
  return {
    PATH: process.env.PATH ?? '',
    GATEWAY_LISTEN: `127.0.0.1:${await getFreePort()}`,
    GATEWAY_ADMIN_LISTEN: `127.0.0.1:${await getFreePort()}`,
    GATEWAY_TLS_CERT: pki.edge.chainPem,
    GATEWAY_TLS_KEY: pki.edge.keyPem,
    GATEWAY_SNI_SUFFIXES: SUFFIX,
    GATEWAY_BACKEND_CA: pki.ca.certPem,
    GATEWAY_BACKEND_CLIENT_CERT: client.chainPem,
    GATEWAY_BACKEND_CLIENT_KEY: client.keyPem,
    ...env,
  };
}

export interface AppProcess {
  readonly child: ChildProcess;
  /** Every log line so far, parsed. */
  readonly lines: readonly LogLine[];
  /** The first log line that matches, waiting for it. */
  logLine(match: (line: LogLine) => boolean): Promise<LogLine>;
  /** Sends `signal` and waits for the exit. */
  stop(signal?: NodeJS.Signals): Promise<void>;
}

/** Starts `main` (an app's main.ts) and waits for the log line `ready`; killed after the test. */
export async function startAppProcess(t: TestContext, main: string, env: Record<string, string>, ready: string): Promise<AppProcess> {
  const child = spawn(process.execPath, ['--conditions=@tenantgate/source', main], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  t.after(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  });
  const lines: LogLine[] = [];
  let stderr = '';
  child.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const reading = (async () => {
    for await (const line of createInterface({ input: child.stdout! })) lines.push(JSON.parse(line) as LogLine);
  })();
  const exited = once(child, 'exit');
  const logLine = async (match: (line: LogLine) => boolean): Promise<LogLine> => {
    for (;;) {
      const line = lines.find(match);
      if (line !== undefined) return line;
      if (child.exitCode !== null || child.signalCode !== null) {
        await reading;
        const late = lines.find(match);
        if (late !== undefined) return late;
        throw new Error(`${main} exited (${child.exitCode ?? child.signalCode}) before the log line came: ${stderr}`);
      }
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  };
  await logLine((line) => line.msg === ready);
  return {
    child,
    lines,
    logLine,
    stop: async (signal = 'SIGTERM') => {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill(signal);
      await exited;
    },
  };
}

/** Starts the gateway process and waits for its `gateway listening` line; killed after the test. */
export async function startGatewayProcess(t: TestContext, env: Record<string, string>): Promise<GatewayProcess> {
  const app = await startAppProcess(t, GATEWAY_MAIN, env, 'gateway listening');
  const [host, port] = splitAddress(env.GATEWAY_LISTEN!);
  const adminPort = Number(splitAddress(env.GATEWAY_ADMIN_LISTEN ?? ':0')[1]);
  return {
    ...app,
    address: { host, port: Number(port) },
    adminPort,
    metric: async (name, labels) => {
      const text = await (await fetch(`http://127.0.0.1:${adminPort}/metrics`)).text();
      const series = labels === undefined ? name : `${name}{${labels}}`;
      const line = text.split('\n').find((l) => l.startsWith(`${series} `));
      return line === undefined ? 0 : Number(line.split(' ').at(-1));
    },
  };
}

function splitAddress(address: string): [string, string] {
  const at = address.lastIndexOf(':');
  return [address.slice(0, at), address.slice(at + 1)];
}

/** The GATEWAY_ADMIN_TOKENS of adminGatewayFixture's gateway. */
export const GATEWAY_ADMIN_TOKEN = 'gateway-admin-token-0123456789';

/** A call to a gateway process's admin port with `token` (default the admin token; null: none) and a JSON body. */
export async function adminCall<Body = Record<string, unknown>>(
  gateway: Pick<GatewayProcess, 'adminPort'>,
  method: string,
  path: string,
  options: { readonly token?: string | null; readonly body?: unknown } = {},
): Promise<{ status: number; body: Body }> {
  const token = options.token === undefined ? GATEWAY_ADMIN_TOKEN : options.token;
  const { body } = options;
  const response = await fetch(`http://127.0.0.1:${gateway.adminPort}${path}`, {
    method,
    headers: token === null ? {} : { authorization: `Bearer ${token}` },
    ...(body === undefined ? {} : { body: typeof body === 'string' ? body : JSON.stringify(body) }),
  });
  return { status: response.status, body: (await response.json()) as Body };
}

export interface AdminGatewayFixture {
  readonly pki: TestPki;
  readonly dir: string;
  readonly backend: PostgresServer;
  /** The tenants file: `acme` and `globex`, role `app` with PASSWORD, on `backend`. */
  readonly tenantsFile: string;
  /** The test CA as a file, for psql's sslrootcert. */
  readonly caFile: string;
  readonly gateway: GatewayProcess;
}

/** A certificate-login backend, two tenants on it, and a gateway process whose admin port takes GATEWAY_ADMIN_TOKEN. */
export async function adminGatewayFixture(t: TestContext, env: Record<string, string> = {}): Promise<AdminGatewayFixture> {
  const pki = await createTestPki();
  const dir = scratchDir(t, 'gw-admin');
  const backend = await startCertBackend(t, pki);
  const tenantsFile = join(dir, 'tenants.json');
  const tenant = (id: string) => ({ id, backend: { host: '127.0.0.1', port: backend.port }, roles: [{ name: 'app', password: PASSWORD }] });
  await writeFile(tenantsFile, JSON.stringify({ tenants: [tenant('acme'), tenant('globex')] }));
  const caFile = join(dir, 'ca.pem');
  await writeFile(caFile, pki.ca.certPem);
  const gatewayEnv = await gatewayEnvironment(pki, {
    GATEWAY_TENANTS_FILE: tenantsFile,
    GATEWAY_ADMIN_TOKENS: GATEWAY_ADMIN_TOKEN,
    ...env,
  });
  return { pki, dir, backend, tenantsFile, caFile, gateway: await startGatewayProcess(t, gatewayEnv) };
}
