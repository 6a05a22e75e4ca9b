// Real clients against the listener: psql (libpq 15), pg and postgres. The next phase of the
// test listener answers FATAL XX000 `tenant=<id> user=<user> options=<options>`, so what each
// client prints is what the gateway understood.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { writeFile } from 'node:fs/promises';
import { connect as connectTcp } from 'node:net';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import pg from 'pg';
import postgres from 'postgres';
import { createTempDir, createTestPki, removeTempDir, runPsql, type PsqlRun } from '@tenantgate/testing';
import { connectRaw, errorFields, readUntilClose, startTestFront, startupMessage, upgradeToTls, type TestFront } from './testing/front-door.ts';

const pki = await createTestPki({ edgeSuffixes: ['db.example.test'] });
const dir = createTempDir('gateway-listener');
after(() => removeTempDir(dir));
const caFile = join(dir, 'ca.crt');
await writeFile(caFile, pki.ca.certPem);
const ACME = 'acme.db.example.test';

/** psql with `settings` against the listener; never prompts, ignores ~/.postgresql. */
function psql(front: TestFront, settings: Record<string, string>): Promise<PsqlRun> {
  return runPsql({ port: String(front.port), user: 'alice', dbname: 'app', connect_timeout: '5', ...settings }, { home: dir });
}

const viaSni = { host: ACME, hostaddr: '127.0.0.1' };

test('psql sslmode=require: the tenant comes from SNI', async (t) => {
  const front = await startTestFront(t, pki);
  const run = await psql(front, { ...viaSni, sslmode: 'require' });
  assert.equal(run.code, 2);
  assert.match(run.stderr, /FATAL: {2}tenant=acme user=alice options=$/m);
  assert.equal(front.clients[0].serverName, ACME);
});

test('psql sslmode=verify-full against the CA, with gssencmode=prefer (the default path)', async (t) => {
  const front = await startTestFront(t, pki);
  const run = await psql(front, { ...viaSni, sslmode: 'verify-full', sslrootcert: caFile, gssencmode: 'prefer' });
  assert.match(run.stderr, /FATAL: {2}tenant=acme user=alice options=$/m);
});

test('psql to an IP address with options=-c tenant=acme: the tenant comes from options, which are left empty', async (t) => {
  const front = await startTestFront(t, pki);
  const run = await psql(front, { host: '127.0.0.1', sslmode: 'require', options: '-c tenant=acme' });
  assert.match(run.stderr, /FATAL: {2}tenant=acme user=alice options=$/m);
  assert.equal(front.clients[0].serverName, undefined);
  assert.equal(front.clients[0].startup.parameters.has('options'), false);
});

test('psql options keep their other settings, escapes included', async (t) => {
  const front = await startTestFront(t, pki);
  const run = await psql(front, { host: '127.0.0.1', sslmode: 'require', options: '-c search_path=x -ctenant=acme -c application_name=a\\ b' });
  assert.match(run.stderr, /FATAL: {2}tenant=acme user=alice options=-c search_path=x -c application_name=a\\ b$/m);
});

test('psql with SNI acme and options tenant=other is refused with 08004', async (t) => {
  const front = await startTestFront(t, pki);
  const run = await psql(front, { ...viaSni, sslmode: 'require', options: '-c tenant=other' });
  assert.match(run.stderr, /FATAL: {2}the host name names tenant "acme" but options name tenant "other"/);
  assert.equal(front.clients.length, 0);
});

test('psql with neither SNI nor option sees how to name the tenant', async (t) => {
  const front = await startTestFront(t, pki);
  const run = await psql(front, { host: '127.0.0.1', sslmode: 'require' });
  assert.match(run.stderr, /FATAL: {2}no tenant in the connection/);
  assert.match(run.stderr, /<tenant>\.db\.example\.test/);
  assert.match(run.stderr, /options=-c%20tenant%3D<tenant>/);
});

test('psql sslmode=disable is told that TLS is required', async (t) => {
  const front = await startTestFront(t, pki);
  const run = await psql(front, { ...viaSni, sslmode: 'disable' });
  assert.match(run.stderr, /FATAL: {2}TLS is required/);
  assert.match(run.stderr, /sslmode=require/);
});

test('pg (node-postgres) with ssl { ca, servername } sees what the gateway understood, and the 08004s', async (t) => {
  const front = await startTestFront(t, pki);
  const connect = async (config: pg.ClientConfig) => {
    const client = new pg.Client({ host: '127.0.0.1', port: front.port, user: 'alice', database: 'app', ...config });
    client.on('error', () => undefined);
    t.after(() => client.end().catch(() => undefined));
    await client.connect();
  };
  await assert.rejects(connect({ ssl: { ca: pki.ca.certPem, servername: ACME } }), { code: 'XX000', message: 'tenant=acme user=alice options=' });
  const noSni = { ca: pki.ca.certPem, checkServerIdentity: () => undefined };
  await assert.rejects(connect({ ssl: noSni, options: '-c tenant=acme -c search_path=x' }), {
    code: 'XX000',
    message: 'tenant=acme user=alice options=-c search_path=x',
  });
  await assert.rejects(connect({ ssl: { ca: pki.ca.certPem, servername: ACME }, options: '-c tenant=other' }), { code: '08004' });
  await assert.rejects(connect({ ssl: noSni }), { code: '08004', message: 'no tenant in the connection' });
});

test('postgres (porsager) with ssl { ca, servername } sees what the gateway understood', async (t) => {
  const front = await startTestFront(t, pki);
  const connect = (options: postgres.Options<Record<string, never>>) => {
    const sql = postgres({ host: '127.0.0.1', port: front.port, user: 'alice', database: 'app', max: 1, connect_timeout: 5, fetch_types: false, ...options });
    t.after(() => sql.end({ timeout: 1 }));
    return sql.unsafe('select 1');
  };
  await assert.rejects(connect({ ssl: { ca: pki.ca.certPem, servername: ACME } }), { code: 'XX000', message: 'tenant=acme user=alice options=' });
  await assert.rejects(connect({ ssl: { ca: pki.ca.certPem, servername: ACME }, connection: { options: 'tenant=other' } }), { code: '08004' });
});

/** Waits for a condition the test expects soon; fails instead of hanging when it never comes. */
async function until(condition: () => boolean, tries = 2000): Promise<void> {
  for (let i = 0; !condition(); i++) {
    if (i === tries) assert.fail('the condition never became true');
    await sleep(5);
  }
}

test('above maxPendingConnections a client gets 53300 at once, without TLS; below it, service resumes', async (t) => {
  const front = await startTestFront(t, pki, { config: { maxPendingConnections: 1 } });
  const idle = await connectRaw(front.port);
  await until(() => front.listener.pendingHandshakes === 1);

  const extra = await connectRaw(front.port);
  const { bytes } = await readUntilClose(extra);
  const fields = errorFields(bytes);
  assert.equal(fields.code, '53300');
  assert.equal(fields.message, 'too many connections');

  idle.destroy();
  await until(() => front.listener.pendingHandshakes === 0);
  const tls = await upgradeToTls(await connectRaw(front.port), { ca: pki.ca.certPem, servername: ACME });
  const received = readUntilClose(tls);
  tls.write(startupMessage({ user: 'alice' }));
  assert.equal(errorFields((await received).bytes).code, 'XX000');
});

test('close() stops accepting at once and waits for handshakes under way, which still complete', async (t) => {
  const front = await startTestFront(t, pki);
  const tls = await upgradeToTls(await connectRaw(front.port), { ca: pki.ca.certPem, servername: ACME });
  const closed = front.listener.close();
  const refused = connectTcp({ host: '127.0.0.1', port: front.port });
  const [error] = (await once(refused, 'error')) as [NodeJS.ErrnoException];
  assert.equal(error.code, 'ECONNREFUSED');

  const received = readUntilClose(tls);
  tls.write(startupMessage({ user: 'alice' }));
  assert.equal(errorFields((await received).bytes).message, 'tenant=acme user=alice options=');
  await closed;
  assert.equal(front.listener.pendingHandshakes, 0);
});
