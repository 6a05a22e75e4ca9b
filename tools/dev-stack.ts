// The local stack of `npm start` and `npm run demo`: the control plane (embedded PGlite unless
// DATABASE_URL) and the gateway (in-process cache unless REDIS_URL) as child processes, with
// development certificates and tokens made on first run under the git-ignored `.data/`.
// Their JSON logs go to `.data/logs/`; Ctrl-C stops both.
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join, relative } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { DEV_DOMAIN, ensureDevCertificates, type DevCertificates } from './dev-certs.ts';

export const ROOT = fileURLToPath(new URL('..', import.meta.url));
/** `.data/` in the repository, or TENANTGATE_DATA_DIR (the tests of these tools use their own). */
export const DATA_DIR = process.env.TENANTGATE_DATA_DIR ?? join(ROOT, '.data');

export interface DevStack {
  readonly certs: DevCertificates;
  readonly adminToken: string;
  readonly controlPlaneUrl: string;
  readonly gatewayHost: string;
  readonly gatewayPort: number;
  readonly adminUrl: string | undefined;
  /** A path relative to the working directory, for the commands printed. */
  readonly rel: (path: string) => string;
  readonly dataDir: string;
  stop(): Promise<void>;
}

/** `<data>/stack.json`: the addresses of the running stack. */
export const STACK_FILE = 'stack.json';

export interface StackFile {
  readonly controlPlaneUrl: string;
  /** host:port of the gateway's Postgres port. */
  readonly gateway: string;
  readonly domain: string;
}

interface Tokens {
  readonly admin: string;
  readonly gateway: string;
}

/** Tokens made once and kept, so a restarted stack accepts the commands printed before. */
async function devTokens(): Promise<Tokens> {
  const file = join(DATA_DIR, 'tokens.json');
  try {
    return JSON.parse(await readFile(file, 'utf8')) as Tokens;
  } catch {
    const tokens = { admin: `dev-admin-${randomBytes(12).toString('hex')}`, gateway: `dev-gateway-${randomBytes(12).toString('hex')}` };
    await writeFile(file, JSON.stringify(tokens, null, 2), { mode: 0o600 });
    return tokens;
  }
}

/** A service of the stack exited before it was ready; `stderr` is everything it wrote there. */
export class ServiceExitedError extends Error {
  readonly exitCode: number | null;
  readonly stderr: string;
  constructor(name: string, exitCode: number | null, stderr: string, lastLines: readonly string[]) {
    super(`${name} exited with code ${exitCode} before it was ready:\n${stderr}${lastLines.join('\n')}`);
    this.name = 'ServiceExitedError';
    this.exitCode = exitCode;
    this.stderr = stderr;
  }
}

/**
 * The stack, or, when a service stops at start-up with a line on stderr (`GATEWAY_LISTEN:
 * 127.0.0.1:6432 is already in use`), that line as it is and the service's exit status.
 */
export async function startDevStackOrExit(): Promise<DevStack> {
  try {
    return await startDevStack();
  } catch (error) {
    if (!(error instanceof ServiceExitedError) || error.stderr === '') throw error;
    process.stderr.write(error.stderr);
    process.exit(error.exitCode || 1);
  }
}

/** Starts the control plane, then the gateway; resolves once both listen. */
export async function startDevStack(): Promise<DevStack> {
  await mkdir(join(DATA_DIR, 'logs'), { recursive: true });
  const certs = await ensureDevCertificates(DATA_DIR);
  const tokens = await devTokens();
  const env = process.env;
  const controlPlaneListen = env.CONTROL_PLANE_LISTEN ?? '127.0.0.1:8080';
  const gatewayListen = env.GATEWAY_LISTEN ?? '127.0.0.1:6432';
  const adminListen = env.GATEWAY_ADMIN_LISTEN ?? '127.0.0.1:9187';
  const controlPlaneUrl = `http://${controlPlaneListen}`;
  const children: ChildProcess[] = [];
  const stop = () => stopAll(children);
  try {
    children.push(
      await startService('control-plane', 'apps/control-plane/src/main.ts', 'control plane ready', {
        CONTROL_PLANE_LISTEN: controlPlaneListen,
        CONTROL_PLANE_DATA_DIR: env.CONTROL_PLANE_DATA_DIR ?? join(DATA_DIR, 'control-plane'),
        CONTROL_PLANE_ADMIN_TOKENS: tokens.admin,
        CONTROL_PLANE_GATEWAY_TOKENS: tokens.gateway,
        // The demo's backends run on this machine.
        CONTROL_PLANE_ALLOW_LOCAL_BACKENDS: 'true',
        CONTROL_PLANE_CA_CERT: certs.issuingCaCertFile,
        CONTROL_PLANE_CA_KEY: certs.issuingCaKeyFile,
        CONTROL_PLANE_SECRETS_DIR: certs.secretsDir,
        // Computes are clusters on this machine: a sleeping tenant's is started with pg_ctl.
        CONTROL_PLANE_COMPUTE_DRIVER: 'local',
      }),
    );
    children.push(
      await startService('gateway', 'apps/gateway/src/main.ts', 'gateway listening', {
        GATEWAY_LISTEN: gatewayListen,
        GATEWAY_ADMIN_LISTEN: adminListen,
        GATEWAY_ADMIN_TOKENS: tokens.admin,
        GATEWAY_TLS_CERT: certs.edgeCertFile,
        GATEWAY_TLS_KEY: certs.edgeKeyFile,
        GATEWAY_SNI_SUFFIXES: `.${DEV_DOMAIN}`,
        GATEWAY_CONTROL_PLANE_URL: controlPlaneUrl,
        GATEWAY_CONTROL_PLANE_TOKEN: tokens.gateway,
        GATEWAY_BACKEND_CA: certs.caFile,
        GATEWAY_BACKEND_CLIENT_CERT: certs.gatewayClientCertFile,
        GATEWAY_BACKEND_CLIENT_KEY: certs.gatewayClientKeyFile,
      }),
    );
  } catch (error) {
    await stop();
    throw error;
  }
  const [gatewayHost = '127.0.0.1', gatewayPort = '6432'] = splitListen(gatewayListen);
  // Where this stack listens, for `npm run tenantgate` (tools/tenantgate.ts) to find it.
  const stackFile: StackFile = { controlPlaneUrl, gateway: `${gatewayHost}:${gatewayPort}`, domain: DEV_DOMAIN };
  await writeFile(join(DATA_DIR, STACK_FILE), JSON.stringify(stackFile, null, 2));
  return {
    certs,
    adminToken: tokens.admin,
    controlPlaneUrl,
    gatewayHost,
    gatewayPort: Number(gatewayPort),
    adminUrl: adminListen === '' || adminListen === 'off' ? undefined : `http://${adminListen}`,
    rel: (path) => relative(process.cwd(), path) || '.',
    dataDir: DATA_DIR,
    stop,
  };
}

function splitListen(listen: string): string[] {
  const at = listen.lastIndexOf(':');
  return [listen.slice(0, at).replace(/^\[|\]$/g, '') || '127.0.0.1', listen.slice(at + 1)];
}

/**
 * One of our services as a child process; its log lines go to `.data/logs/<name>.log`. Rejects
 * with its last lines when it exits before logging `readyMessage`.
 */
async function startService(name: string, script: string, readyMessage: string, env: Record<string, string>): Promise<ChildProcess> {
  const log = createWriteStream(join(DATA_DIR, 'logs', `${name}.log`), { flags: 'a' });
  const child = spawn(process.execPath, ['--conditions=@tenantgate/source', join(ROOT, script)], {
    cwd: ROOT,
    // Variables the user set win over the development defaults.
    env: { ...env, ...process.env, LOG_LEVEL: process.env.LOG_LEVEL ?? 'info' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  child.stderr?.pipe(log);
  const last: string[] = [];
  let stderr = '';
  child.stderr?.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  return new Promise((resolve, reject) => {
    const lines = createInterface({ input: child.stdout! });
    lines.on('line', (line) => {
      log.write(`${line}\n`);
      last.push(line);
      if (last.length > 5) last.shift();
      if (line.includes(`"msg":"${readyMessage}"`)) resolve(child);
    });
    // 'close', not 'exit': stderr is read to its end by then.
    child.once('close', (code) => reject(new ServiceExitedError(name, code, stderr, last)));
  });
}

async function stopAll(children: ChildProcess[]): Promise<void> {
  // The gateway first, so it drains while the control plane can still answer.
  for (const child of children.reverse()) {
    if (child.exitCode !== null || child.signalCode !== null) continue;
    const exited = new Promise((resolve) => child.once('exit', resolve));
    child.kill('SIGTERM');
    await exited;
  }
}

/** Stops the stack on Ctrl-C or SIGTERM, once. */
export function stopOnSignal(stop: () => Promise<void>): void {
  let stopping = false;
  const onSignal = () => {
    if (stopping) return;
    stopping = true;
    process.stdout.write('\nstopping...\n');
    void stop().then(() => process.exit(0));
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
}

/** A request to the control plane with the admin token; the body as JSON text. */
export async function controlPlaneRequest(
  stack: DevStack,
  method: string,
  path: string,
  body?: unknown,
): Promise<{ status: number; text: string }> {
  const response = await fetch(`${stack.controlPlaneUrl}${path}`, {
    method,
    headers: { authorization: `Bearer ${stack.adminToken}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  return { status: response.status, text: await response.text() };
}
