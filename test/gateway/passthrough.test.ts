// Tenants in `passthrough` mode: the gateway asks the client for its password (inside TLS) and
// answers whatever the tenant's own PostgreSQL asks with it (SCRAM with channel binding to the
// backend, or md5); the backend, not the gateway, decides. A backend that checks no password
// (pg_hba `cert`) is refused as a wrong password is, since nobody would have checked the client.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { TenantsFileDirectory, type Gateway } from '@tenantgate/gateway';
import { createTestGateway } from './harness.ts';
import { createTestPki, runPsql, startPostgres, type PostgresServer, type TestPki } from '@tenantgate/testing';

const ALICE = 'alice-pw';
const CAROL = 'carol-pw';
const DAVE = 'dave-pw';

let pki: TestPki;
let scramBackend: PostgresServer;
let md5Backend: PostgresServer;
let certBackend: PostgresServer;
let gateway: Gateway;
let dir: string;

before(async () => {
  pki = await createTestPki();
  const tls = { serverCert: pki.backend.chainPem, serverKey: pki.backend.keyPem, clientCa: pki.ca.certPem };
  // verify-ca: the gateway's certificate must be trusted, while the password names the user.
  [scramBackend, md5Backend, certBackend] = await Promise.all([
    startPostgres({
      ...tls,
      hba: ['hostssl all all 127.0.0.1/32 scram-sha-256 clientcert=verify-ca'],
      roles: [
        { name: 'alice', password: ALICE },
        { name: 'dave_app', password: DAVE },
      ],
    }),
    startPostgres({ ...tls, hba: ['hostssl all all 127.0.0.1/32 md5 clientcert=verify-ca'], roles: [{ name: 'carol' }] }),
    startPostgres({ ...tls, hba: ['hostssl all all 127.0.0.1/32 cert'], roles: [{ name: 'gateway' }] }),
  ]);
  await scramBackend.sql("create table marker as select 'scram-backend' as name; grant select on marker to alice, dave_app");
  await md5Backend.sql(`set password_encryption = 'md5'; alter role carol password '${CAROL}'`);
  const [{ rolpassword }] = await md5Backend.sql<{ rolpassword: string }>("select rolpassword from pg_authid where rolname = 'carol'");
  assert.match(rolpassword, /^md5/);
  dir = await mkdtemp(join(tmpdir(), 'tg-passthrough-'));
  await writeFile(join(dir, 'ca.pem'), pki.ca.certPem);
  const backend = (server: PostgresServer) => ({ host: '127.0.0.1', port: server.port, database: 'postgres' });
  const tenantsFile = join(dir, 'tenants.json');
  await writeFile(
    tenantsFile,
    JSON.stringify({
      tenants: [
        { id: 'pt-scram', authMode: 'passthrough', backend: backend(scramBackend) },
        { id: 'pt-template', authMode: 'passthrough', backend: backend(scramBackend), userRewrite: { template: '{user}_app' } },
        { id: 'pt-md5', authMode: 'passthrough', backend: backend(md5Backend) },
        { id: 'pt-cert', authMode: 'passthrough', backend: backend(certBackend) },
      ],
    }),
  );
  gateway = await createTestGateway(pki, await TenantsFileDirectory.open(tenantsFile), { clientName: 'gateway' });
});

after(async () => {
  await gateway?.close();
  await Promise.all([scramBackend?.stop(), md5Backend?.stop(), certBackend?.stop()]);
  if (dir !== undefined) await rm(dir, { recursive: true, force: true });
});

function client(tenant: string, user: string, password: string): pg.Client {
  return new pg.Client({
    host: '127.0.0.1',
    port: gateway.address.port,
    user,
    password,
    database: 'postgres',
    ssl: { ca: pki.ca.certPem, servername: `${tenant}.db.example.test` },
  });
}

async function query(c: pg.Client, text: string): Promise<unknown[]> {
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

function psql(tenant: string, user: string, password: string, extra: Record<string, string> = {}) {
  return runPsql(
    {
      host: `${tenant}.db.example.test`,
      hostaddr: '127.0.0.1',
      port: String(gateway.address.port),
      user,
      dbname: 'postgres',
      sslmode: 'verify-full',
      sslrootcert: join(dir, 'ca.pem'),
      ...extra,
    },
    { sql: 'select current_user', password, home: dir },
  );
}

describe('passthrough authentication', () => {
  test('a SCRAM backend checks the password; the gateway binds to the backend certificate', async () => {
    const rows = await query(client('pt-scram', 'alice', ALICE), 'select current_user as u, (select name from marker) as m');
    assert.deepEqual(rows, [{ u: 'alice', m: 'scram-backend' }]);
  });

  test("a wrong password gets the backend's own 28P01", async () => {
    const error = await connectError(client('pt-scram', 'alice', 'nope'));
    assert.equal(error.code, '28P01');
    assert.match(error.message, /password authentication failed for user "alice"/);
  });

  test('an md5 backend is answered with the md5 of the password', async () => {
    assert.deepEqual(await query(client('pt-md5', 'carol', CAROL), 'select current_user as u'), [{ u: 'carol' }]);
    assert.equal((await connectError(client('pt-md5', 'carol', 'nope'))).code, '28P01');
  });

  test("the tenant's user template applies before the backend checks the password", async () => {
    assert.deepEqual(await query(client('pt-template', 'dave', DAVE), 'select current_user as u'), [{ u: 'dave_app' }]);
  });

  test("psql with libpq's default channel_binding=prefer connects", async () => {
    assert.deepEqual(await psql('pt-scram', 'alice', ALICE), { code: 0, stdout: 'alice\n', stderr: '' });
  });

  test('channel_binding=require cannot be met in passthrough: libpq refuses the cleartext request', async () => {
    const run = await psql('pt-scram', 'alice', ALICE, { channel_binding: 'require' });
    assert.equal(run.code, 2);
    assert.match(run.stderr, /channel binding required/);
  });

  test('a backend that checks no password is refused as a wrong password is: nobody would have checked the client', async () => {
    const error = await connectError(client('pt-cert', 'gateway', 'anything'));
    assert.equal(error.code, '28P01');
    assert.equal(error.message, 'password authentication failed for user "gateway"');
    // The same answer as a password role with a wrong password: the method is not given away.
    const wrong = await connectError(client('pt-scram', 'alice', 'nope'));
    assert.deepEqual([wrong.code, wrong.message.replace('alice', 'gateway')], [error.code, error.message]);
  });
});
