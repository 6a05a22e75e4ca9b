// The gateway end to end: real PostgreSQL backends (one authenticating the gateway by its client
// certificate, one by SCRAM with the key recovered from the client's proof, clientcert=verify-full),
// a static tenants file, and real clients (psql, pg) connecting through the gateway's TLS.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { TenantsFileDirectory, type Gateway } from '@tenantgate/gateway';
import { createTestGateway, sendCancel, waitForActiveSleep } from './harness.ts';
import { createTestPki, runPsql, startPostgres, type PostgresServer, type TestPki } from '@tenantgate/testing';

const PASSWORD = 'secret-pw';

let pki: TestPki;
let certBackend: PostgresServer;
let scramBackend: PostgresServer;
let gateway: Gateway;
let dir: string;

before(async () => {
  pki = await createTestPki();
  const tls = { serverCert: pki.backend.chainPem, serverKey: pki.backend.keyPem, clientCa: pki.ca.certPem };
  [certBackend, scramBackend] = await Promise.all([
    startPostgres({ ...tls, hba: ['hostssl all all 127.0.0.1/32 cert'], roles: [{ name: 'app' }] }),
    startPostgres({
      ...tls,
      hba: ['hostssl all all 127.0.0.1/32 scram-sha-256 clientcert=verify-full'],
      roles: [{ name: 'app', password: PASSWORD }],
    }),
  ]);
  await certBackend.sql("create table marker as select 'cert-backend' as name; grant select on marker to app");
  await scramBackend.sql("create table marker as select 'scram-backend' as name; grant select on marker to app");
  const [{ rolpassword }] = await scramBackend.sql<{ rolpassword: string }>("select rolpassword from pg_authid where rolname = 'app'");
  dir = await mkdtemp(join(tmpdir(), 'tg-gateway-'));
  await writeFile(join(dir, 'ca.pem'), pki.ca.certPem);
  const tenantsFile = join(dir, 'tenants.json');
  await writeFile(
    tenantsFile,
    JSON.stringify({
      tenants: [
        // The cert backend knows no password: the gateway's client certificate (CN app) is the login.
        {
          id: 'acme',
          backend: { host: '127.0.0.1', port: certBackend.port, database: 'postgres' },
          roles: [{ name: 'app', password: PASSWORD }],
        },
        // The SCRAM backend checks the key recovered from the client's proof: same secret, same salt.
        {
          id: 'globex',
          backend: { host: '127.0.0.1', port: scramBackend.port, database: 'postgres' },
          roles: [{ name: 'app', scramSecret: rolpassword }],
        },
      ],
    }),
  );
  gateway = await createTestGateway(pki, await TenantsFileDirectory.open(tenantsFile));
});

after(async () => {
  await gateway?.close();
  await Promise.all([certBackend?.stop(), scramBackend?.stop()]);
  if (dir !== undefined) await rm(dir, { recursive: true, force: true });
});

function client(tenant: string, options: { password?: string; user?: string; channelBinding?: boolean } = {}): pg.Client {
  return new pg.Client({
    host: '127.0.0.1',
    port: gateway.address.port,
    user: options.user ?? 'app',
    password: options.password ?? PASSWORD,
    database: 'postgres',
    ssl: { ca: pki.ca.certPem, servername: `${tenant}.db.example.test` },
    enableChannelBinding: options.channelBinding ?? true,
  });
}

async function query(tenant: string, text: string): Promise<unknown[]> {
  const c = client(tenant);
  await c.connect();
  try {
    return (await c.query(text)).rows;
  } finally {
    await c.end();
  }
}

async function connectError(c: pg.Client): Promise<{ code?: string; message: string }> {
  try {
    await c.connect();
  } catch (error) {
    return error as { code?: string; message: string };
  } finally {
    await c.end().catch(() => {});
  }
  assert.fail('the connection was expected to fail');
}

describe('through the gateway', () => {
  test('each tenant reaches only its own backend', async () => {
    assert.deepEqual(await query('acme', 'select name from marker'), [{ name: 'cert-backend' }]);
    assert.deepEqual(await query('globex', 'select name from marker'), [{ name: 'scram-backend' }]);
  });

  test('SCRAM-SHA-256-PLUS at the edge, then SCRAM with channel binding to the backend', async () => {
    assert.deepEqual(await query('globex', 'select current_user as u'), [{ u: 'app' }]);
  });

  test('psql connects with sslmode=verify-full and channel_binding=require', async () => {
    const run = await runPsql(
      {
        host: 'globex.db.example.test',
        hostaddr: '127.0.0.1',
        port: String(gateway.address.port),
        user: 'app',
        dbname: 'postgres',
        sslmode: 'verify-full',
        sslrootcert: join(dir, 'ca.pem'),
        channel_binding: 'require',
      },
      { sql: 'select name from marker', password: PASSWORD, home: dir },
    );
    assert.deepEqual(run, { code: 0, stdout: 'scram-backend\n', stderr: '' });
  });

  test('a wrong password and an unknown role both get 28P01', async () => {
    const wrong = await connectError(client('acme', { password: 'nope' }));
    const unknown = await connectError(client('acme', { user: 'mallory' }));
    assert.equal(wrong.code, '28P01');
    assert.equal(unknown.code, '28P01');
    assert.match(wrong.message, /password authentication failed for user "app"/);
  });

  test("tenant A's role cannot log in through tenant B's name with A's password", async () => {
    // Both tenants have a role "app"; a password valid for one is checked against the other's secret.
    const error = await connectError(client('globex', { password: 'not-the-globex-password' }));
    assert.equal(error.code, '28P01');
  });

  test('an unknown tenant gets 08004', async () => {
    const error = await connectError(client('initech'));
    assert.equal(error.code, '08004');
    assert.match(error.message, /tenant "initech" does not exist/);
  });

  test('a running query is cancelled through the key the gateway issued (57014)', async () => {
    const c = client('acme');
    await c.connect();
    try {
      const sleeping = c.query('select pg_sleep(30)');
      await waitForActiveSleep(certBackend);
      const { processID, secretKey } = c as unknown as { processID: number; secretKey: number };
      await sendCancel(gateway, processID, secretKey);
      await assert.rejects(sleeping, (error: { code?: string }) => error.code === '57014');
    } finally {
      await c.end().catch(() => {});
    }
  });
});
