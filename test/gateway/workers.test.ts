// GATEWAY_WORKERS=2: two worker processes share the port (reusePort), the primary serves the
// admin port with their metrics summed, a cancel reaches the session whichever worker it lands
// on, a killed worker is replaced, and SIGTERM drains every worker.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { serializeCancelRequest } from '@tenantgate/wire';
import { createTestPki, getFreePort, startPostgres, type PostgresServer, type TestPki } from '@tenantgate/testing';

const ADMIN_TOKEN = 'gateway-admin-token-0123456789';
const MAIN = fileURLToPath(new URL('../../apps/gateway/src/main.ts', import.meta.url));
let pki: TestPki;
let backend: PostgresServer;
let dir: string;
let child: ChildProcess;
let port: number;
let adminPort: number;
const lines: Record<string, unknown>[] = [];

/** Resolves with the first log line that matches, from any process of the gateway. */
function logLine(match: (line: Record<string, unknown>) => boolean): Promise<Record<string, unknown>> {
  const seen = lines.find(match);
  if (seen !== undefined) return Promise.resolve(seen);
  return new Promise((resolve) => {
    const check = setInterval(() => {
      const line = lines.find(match);
      if (line === undefined) return;
      clearInterval(check);
      resolve(line);
    }, 20);
  });
}

before(async () => {
  pki = await createTestPki();
  backend = await startPostgres({
    serverCert: pki.backend.chainPem,
    serverKey: pki.backend.keyPem,
    clientCa: pki.ca.certPem,
    hba: ['hostssl all all 127.0.0.1/32 cert'],
    roles: [{ name: 'app' }],
  });
  dir = await mkdtemp(join(tmpdir(), 'tg-workers-'));
  const client = await pki.client('app');
  const tenantsFile = join(dir, 'tenants.json');
  await writeFile(
    tenantsFile,
    JSON.stringify({
      tenants: [{ id: 'acme', backend: { host: '127.0.0.1', port: backend.port }, roles: [{ name: 'app', password: 'pw' }] }],
    }),
  );
  [port, adminPort] = [await getFreePort(), await getFreePort()];
  child = spawn(process.execPath, ['--conditions=@tenantgate/source', MAIN], {
    env: {
      PATH: process.env.PATH ?? '',
      GATEWAY_WORKERS: '2',
      GATEWAY_LISTEN: `127.0.0.1:${port}`,
      GATEWAY_ADMIN_LISTEN: `127.0.0.1:${adminPort}`,
      GATEWAY_TLS_CERT: pki.edge.chainPem,
      GATEWAY_TLS_KEY: pki.edge.keyPem,
      GATEWAY_SNI_SUFFIXES: '.db.example.test',
      GATEWAY_TENANTS_FILE: tenantsFile,
      GATEWAY_BACKEND_CA: pki.ca.certPem,
      GATEWAY_BACKEND_CLIENT_CERT: client.chainPem,
      GATEWAY_BACKEND_CLIENT_KEY: client.keyPem,
      GATEWAY_DRAIN_SECONDS: '5',
      GATEWAY_ADMIN_TOKENS: ADMIN_TOKEN,
    },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  void (async () => {
    for await (const line of createInterface({ input: child.stdout! })) lines.push(JSON.parse(line) as Record<string, unknown>);
  })();
  await Promise.all([logLine((l) => l.msg === 'gateway primary started'), workersListening(2)]);
});

after(async () => {
  if (child.exitCode === null) child.kill('SIGKILL');
  await backend?.stop();
  if (dir !== undefined) await rm(dir, { recursive: true, force: true });
});

function workersListening(count: number, after = 0): Promise<unknown> {
  return logLine(() => lines.slice(after).filter((l) => l.msg === 'gateway listening').length >= count);
}

function client(): pg.Client {
  return new pg.Client({
    host: '127.0.0.1',
    port,
    user: 'app',
    password: 'pw',
    database: 'postgres',
    ssl: { ca: pki.ca.certPem, servername: 'acme.db.example.test' },
  });
}

async function currentUser(): Promise<string> {
  const c = client();
  await c.connect();
  try {
    return (await c.query<{ u: string }>('select current_user as u')).rows[0]!.u;
  } finally {
    await c.end();
  }
}

async function metric(name: string, labels: string): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${adminPort}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith(`${name}{${labels}}`));
  return line === undefined ? 0 : Number(line.split(' ').at(-1));
}

test('both workers serve the port, and the admin port sums their metrics', async () => {
  const before = await metric('tenantgate_connections_total', 'outcome="session"');
  for (let i = 0; i < 20; i++) assert.equal(await currentUser(), 'app');
  assert.equal(await metric('tenantgate_connections_total', 'outcome="session"'), before + 20);
  assert.equal((await fetch(`http://127.0.0.1:${adminPort}/readyz`)).status, 200);
});

test('a cancel reaches its session whichever worker takes the CancelRequest', async () => {
  // Each cancel is a new connection that the kernel gives to either worker: repeat until one
  // lands on the worker that does not hold the session (each try has an even chance).
  let crossed = false;
  for (let i = 0; i < 40 && !crossed; i++) {
    const c = client();
    await c.connect();
    try {
      const sleeping = c.query('select pg_sleep(30)');
      await waitForActiveSleep();
      const { processID, secretKey } = c as unknown as { processID: number; secretKey: number };
      const key = Buffer.alloc(4);
      key.writeInt32BE(secretKey);
      const socket = connect({ host: '127.0.0.1', port });
      await once(socket, 'connect');
      socket.end(serializeCancelRequest(processID, key));
      await once(socket, 'close');
      await assert.rejects(sleeping, (error: { code?: string }) => error.code === '57014');
      const session = lines.findLast((l) => l.msg === 'session started');
      const cancel = await logLine(() => lines.filter((l) => l.msg === 'cancel request').length > i).then(() =>
        lines.findLast((l) => l.msg === 'cancel request'),
      );
      assert.equal(cancel?.result, 'forwarded');
      crossed = session?.worker !== cancel?.worker;
    } finally {
      await c.end().catch(() => {});
    }
  }
  assert.ok(crossed, 'a cancel was forwarded by the worker that does not hold the session');
});

test("the primary's admin port lists every worker's sessions and ends one in whichever worker holds it", async () => {
  const clients = Array.from({ length: 6 }, () => client());
  await Promise.all(clients.map((c) => c.connect()));
  const target = clients[0]!;
  for (const c of clients) c.on('error', () => {});
  const ended = new Promise<string | undefined>((resolve) => target.on('error', (err: Error & { code?: string }) => resolve(err.code)));
  const sessions = async () => {
    const response = await fetch(`http://127.0.0.1:${adminPort}/sessions?tenant=acme`, {
      headers: { authorization: `Bearer ${ADMIN_TOKEN}` },
    });
    return ((await response.json()) as { sessions: { id: string; clientPort: number }[] }).sessions;
  };
  const listed = await sessions();
  assert.equal(listed.length, 6, 'the sessions of both workers, each once');
  // node-postgres's socket: its local port is the session's client port.
  const port = (target as unknown as { connection: { stream: { localPort: number } } }).connection.stream.localPort;
  const mine = listed.find((s) => s.clientPort === port);
  assert.ok(mine, `a session from port ${port}`);
  const response = await fetch(`http://127.0.0.1:${adminPort}/sessions/${mine.id}`, {
    method: 'DELETE',
    headers: { authorization: `Bearer ${ADMIN_TOKEN}` },
  });
  assert.equal(response.status, 200);
  assert.equal(await ended, '57P01');
  // The session leaves the list once both of its sockets have closed, just after the client's FATAL.
  let left = (await sessions()).length;
  for (let i = 0; i < 100 && left !== 5; i++) {
    await new Promise((resolve) => setTimeout(resolve, 20));
    left = (await sessions()).length;
  }
  assert.equal(left, 5);
  await Promise.all(clients.slice(1).map((c) => c.end()));
});

test('a worker that dies is replaced, and the port keeps serving', async () => {
  const listening = lines.filter((l) => l.msg === 'gateway listening');
  const victim = listening.at(-1)!.pid as number;
  const seen = lines.length;
  process.kill(victim, 'SIGKILL');
  await logLine((l) => l.msg === 'worker exited; starting another' && l.pid === victim);
  await workersListening(1, seen);
  for (let i = 0; i < 10; i++) assert.equal(await currentUser(), 'app');
});

test('SIGTERM drains every worker: an idle session gets 57P01, then the primary exits 0', async () => {
  const c = client();
  await c.connect();
  const ended = new Promise<{ code?: string }>((resolve) => c.on('error', (error) => resolve(error as Error & { code?: string })));
  const exited = once(child, 'exit');
  child.kill('SIGTERM');
  assert.equal((await ended).code, '57P01');
  const [code] = await exited;
  assert.equal(code, 0);
  assert.ok(
    lines.some((l) => l.msg === 'stopped' && l.worker === undefined),
    'the primary logged its stop',
  );
});

async function waitForActiveSleep(): Promise<void> {
  for (let i = 0; i < 1000; i++) {
    const rows = await backend.sql("select 1 from pg_stat_activity where state = 'active' and query like 'select pg_sleep%'");
    if (rows.length > 0) return;
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  throw new Error('the query never started');
}

test('workers that cannot start stop the gateway with status 1 instead of restarting forever', async () => {
  const failing = spawn(process.execPath, ['--conditions=@tenantgate/source', MAIN], {
    env: {
      PATH: process.env.PATH ?? '',
      GATEWAY_WORKERS: '2',
      GATEWAY_LISTEN: `127.0.0.1:${await getFreePort()}`,
      GATEWAY_ADMIN_LISTEN: 'off',
      GATEWAY_TLS_CERT: pki.edge.chainPem,
      GATEWAY_TLS_KEY: pki.edge.keyPem,
      GATEWAY_SNI_SUFFIXES: '.db.example.test',
      GATEWAY_TENANTS_FILE: join(dir, 'no-such-tenants.json'),
    },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  let stdout = '';
  failing.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
  const [code] = await once(failing, 'exit');
  assert.equal(code, 1);
  assert.match(stdout, /"msg":"a worker could not start; stopping the gateway"/);
});
