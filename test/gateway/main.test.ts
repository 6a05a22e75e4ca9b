// The gateway as a process: `npm run gateway` configured by GATEWAY_* variables.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { createTestPki, startPostgres, type PostgresServer, type TestPki } from '@tenantgate/testing';

const MAIN = fileURLToPath(new URL('../../apps/gateway/src/main.ts', import.meta.url));
let pki: TestPki;
let backend: PostgresServer;
let dir: string;

before(async () => {
  pki = await createTestPki();
  backend = await startPostgres({
    serverCert: pki.backend.chainPem,
    serverKey: pki.backend.keyPem,
    clientCa: pki.ca.certPem,
    hba: ['hostssl all all 127.0.0.1/32 cert'],
    roles: [{ name: 'app' }],
  });
  dir = await mkdtemp(join(tmpdir(), 'tg-main-'));
});

after(async () => {
  await backend?.stop();
  if (dir !== undefined) await rm(dir, { recursive: true, force: true });
});

function gateway(env: Record<string, string>, args: string[] = []): ChildProcess {
  return spawn(process.execPath, ['--conditions=@tenantgate/source', MAIN, ...args], {
    env: { PATH: process.env.PATH ?? '', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
}

async function output(child: ChildProcess): Promise<{ code: number | null; stdout: string; stderr: string }> {
  let stdout = '';
  let stderr = '';
  child.stdout?.on('data', (chunk) => (stdout += chunk));
  child.stderr?.on('data', (chunk) => (stderr += chunk));
  const [code] = await once(child, 'exit');
  return { code, stdout, stderr };
}

test('--help lists every variable with its default', async () => {
  const { code, stdout } = await output(gateway({}, ['--help']));
  assert.equal(code, 0);
  for (const name of [
    'GATEWAY_LISTEN',
    'GATEWAY_TLS_CERT',
    'GATEWAY_SNI_SUFFIXES',
    'GATEWAY_TENANTS_FILE',
    'REDIS_URL',
    'GATEWAY_DRAIN_SECONDS',
    'LOG_LEVEL',
  ]) {
    assert.match(stdout, new RegExp(name));
  }
});

test('a bad value stops start-up with one line naming the variable', async () => {
  const { code, stderr } = await output(
    gateway({ GATEWAY_TENANTS_FILE: '/x.json', GATEWAY_ALLOW_PLAINTEXT: 'true', GATEWAY_DRAIN_SECONDS: 'soon' }),
  );
  assert.equal(code, 2);
  assert.match(stderr, /^GATEWAY_DRAIN_SECONDS: .*"soon"/m);
});

test('serves a tenant from a tenants file, with PEM in the environment, and drains on SIGTERM', async (t) => {
  const client = await pki.client('app');
  const tenantsFile = join(dir, 'tenants.json');
  await writeFile(
    tenantsFile,
    JSON.stringify({
      tenants: [{ id: 'acme', backend: { host: '127.0.0.1', port: backend.port }, roles: [{ name: 'app', password: 'pw' }] }],
    }),
  );
  const child = gateway({
    GATEWAY_LISTEN: '127.0.0.1:0',
    GATEWAY_ADMIN_LISTEN: 'off',
    GATEWAY_TLS_CERT: pki.edge.chainPem,
    GATEWAY_TLS_KEY: pki.edge.keyPem,
    GATEWAY_SNI_SUFFIXES: '.db.example.test',
    GATEWAY_TENANTS_FILE: tenantsFile,
    GATEWAY_BACKEND_CA: pki.ca.certPem,
    GATEWAY_BACKEND_CLIENT_CERT: client.chainPem,
    GATEWAY_BACKEND_CLIENT_KEY: client.keyPem,
    GATEWAY_DRAIN_SECONDS: '5',
  });
  t.after(() => child.kill('SIGKILL'));
  const exited = output(child);
  const port = await listeningPort(child);
  const c = new pg.Client({
    host: '127.0.0.1',
    port,
    user: 'app',
    password: 'pw',
    database: 'postgres',
    ssl: { ca: pki.ca.certPem, servername: 'acme.db.example.test' },
  });
  await c.connect().catch(async (error) => {
    child.kill('SIGKILL');
    const { stdout, stderr } = await exited;
    throw new Error(`${error.message}\n${stdout}\n${stderr}`);
  });
  assert.deepEqual((await c.query('select current_user as u')).rows, [{ u: 'app' }]);
  // pg reports the FATAL, then the closed socket: keep listening so neither is unhandled.
  const ended = new Promise<{ code?: string }>((resolve) => c.on('error', (error) => resolve(error as Error & { code?: string })));
  child.kill('SIGTERM');
  assert.equal((await ended).code, '57P01', 'the idle session is told the gateway is shutting down');
  const { code, stdout } = await exited;
  assert.equal(code, 0);
  assert.match(stdout, /"msg":"stopped"/);
});

/** The port from the `gateway listening` log line. */
async function listeningPort(child: ChildProcess): Promise<number> {
  for await (const line of createInterface({ input: child.stdout! })) {
    const entry = JSON.parse(line) as { msg?: string; listen?: { port: number } };
    if (entry.msg === 'gateway listening' && entry.listen !== undefined) return entry.listen.port;
  }
  throw new Error('the gateway exited before listening');
}

test('a failed start exits with status 1 even with a Redis connection open', async () => {
  const { code, stdout } = await output(
    gateway({
      GATEWAY_LISTEN: '127.0.0.1:0',
      GATEWAY_ADMIN_LISTEN: 'off',
      GATEWAY_TLS_CERT: join(dir, 'missing.crt'),
      GATEWAY_TLS_KEY: join(dir, 'missing.key'),
      GATEWAY_SNI_SUFFIXES: '.db.example.test',
      GATEWAY_CONTROL_PLANE_URL: 'http://127.0.0.1:9',
      GATEWAY_CONTROL_PLANE_TOKEN: 'a-gateway-token-for-tests',
      // Nothing listens there: the resolver keeps reconnecting in the background.
      REDIS_URL: 'redis://127.0.0.1:9',
    }),
  );
  assert.equal(code, 1);
  assert.match(stdout, /"msg":"the gateway could not start"/);
});
