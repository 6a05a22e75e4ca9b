// Who gets in and who is turned away, through the whole gateway with real clients: a wrong
// password and an unknown role are indistinguishable (28P01, same words, same SCRAM exchange);
// the tenant named by `options` when there is no SNI; no tenant at all, or SNI and options that
// disagree (08004); a role of one tenant tried under another tenant's name; and the admission
// refusals of admission (docs/architecture.md, step 7) (status, CIDR allow-list, connection cap). Not repeated here:
// the unknown-tenant 08004 and the plain wrong-password cases of gateway.test.ts.
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Gateway } from '@tenantgate/gateway';
import { createTestPki, runPsql, type TestPki } from '@tenantgate/testing';
import { ScramClientExchange, serializeSASLInitialResponse } from '@tenantgate/wire';
import {
  PASSWORD,
  SUFFIX,
  connectError,
  connectPg,
  errorFields,
  nextMessage,
  parsed,
  pgClient,
  psqlSettings,
  scratchDir,
  startBackend,
  startGateway,
  tenantHost,
  openToScram,
  type TenantEntry,
} from './harness.ts';

const ALICE_PASSWORD = 'alice-only-in-acme';

test('refusals and tenant selection', async (t) => {
  const pki = await createTestPki();
  const dir = scratchDir(t, 'gw-refusals');
  const caFile = join(dir, 'ca.pem');
  await writeFile(caFile, pki.ca.certPem);
  // pg_hba `cert`: every edge role maps to the backend user "app", the gateway certificate's CN.
  const backend = await startBackend(t, pki, {
    hba: ['hostssl all all 127.0.0.1/32 cert'],
    roles: [{ name: 'app' }],
    databases: [{ name: 'app', owner: 'app' }],
  });
  const at = { host: '127.0.0.1', port: backend.port };
  const app = { name: 'app', password: PASSWORD };
  const tenants: TenantEntry[] = [
    { id: 'acme', backend: at, roles: [app, { name: 'alice', password: ALICE_PASSWORD, backendUser: 'app' }] },
    { id: 'globex', backend: at, roles: [{ name: 'app', password: 'the-globex-password' }] },
    { id: 'frozen', backend: at, roles: [app], status: 'suspended' },
    { id: 'upkeep', backend: at, roles: [app], status: 'maintenance' },
    { id: 'fenced', backend: at, roles: [app], allowedCidrs: ['10.0.0.0/8'] },
    { id: 'tiny', backend: at, roles: [app], limits: { maxConnections: 1, connectsPerSecond: 1000 } },
  ];
  const gateway = await startGateway(t, { pki, dir, tenants });
  const viaSni = (tenant: string, options: { user?: string; password?: string; options?: string } = {}) =>
    pgClient(gateway, pki, { servername: tenantHost(tenant), ...options });
  // An IP host: TLS without SNI, verified against the CA only (the edge certificate names no IP).
  const viaIp = (options: string | undefined) =>
    pgClient(gateway, pki, { sslmode: 'require', ...(options === undefined ? {} : { options }) });

  await t.test('a wrong password and an unknown role: 28P01, the same words, nothing else to tell them apart', async () => {
    const wrong = await connectError(viaSni('acme', { password: 'not-it' }));
    const unknown = await connectError(viaSni('acme', { user: 'mallory' }));
    assert.deepEqual(pick(wrong), {
      severity: 'FATAL',
      code: '28P01',
      message: 'password authentication failed for user "app"',
      detail: undefined,
      hint: undefined,
    });
    assert.deepEqual(pick(unknown), { ...pick(wrong), message: 'password authentication failed for user "mallory"' });
  });

  await t.test('psql shows the same line for a wrong password and an unknown role', async () => {
    const run = (user: string, password: string) => runPsql(psqlSettings(gateway, caFile, 'acme', { user }), { password, home: dir });
    const [wrong, unknown] = await Promise.all([run('app', 'not-it'), run('mallory', PASSWORD)]);
    assert.equal(wrong.code, 2);
    assert.equal(unknown.code, 2);
    assert.equal(unknown.stderr.replaceAll('mallory', 'app'), wrong.stderr);
  });

  await t.test("an unknown role's SCRAM exchange looks like a real role's: same mechanisms, iterations, a stable salt", async (t) => {
    const real = await serverFirst(t, gateway, pki, 'app');
    const unknown = await serverFirst(t, gateway, pki, 'mallory');
    const again = await serverFirst(t, gateway, pki, 'mallory');
    assert.deepEqual(unknown.mechanisms, real.mechanisms);
    assert.equal(unknown.iterations, real.iterations);
    assert.equal(again.salt, unknown.salt, 'a salt that changes per attempt gives an unknown role away');
    assert.notEqual(unknown.salt, real.salt);
  });

  await t.test("a role of tenant acme, with its right password, cannot log in through globex's host name", async () => {
    const control = viaSni('acme', { user: 'alice', password: ALICE_PASSWORD });
    await control.connect();
    assert.deepEqual((await control.query('select current_user as u')).rows, [{ u: 'app' }]);
    await control.end();
    const error = await connectError(viaSni('globex', { user: 'alice', password: ALICE_PASSWORD }));
    assert.deepEqual(pick(error), {
      severity: 'FATAL',
      code: '28P01',
      message: 'password authentication failed for user "alice"',
      detail: undefined,
      hint: undefined,
    });
    // The same role name in both tenants: acme's password is not globex's.
    assert.equal((await connectError(viaSni('globex', { password: PASSWORD }))).code, '28P01');
  });

  for (const options of ['tenant=acme', '-c tenant=acme', '-ctenant=acme', '--tenant=acme']) {
    await t.test(`no SNI (an IP host), options "${options}": the tenant's backend, and the setting never reaches it`, async (t) => {
      const client = viaIp(`${options} -c search_path=tenant_schema,public`);
      client.on('error', () => {});
      t.after(() => client.end().catch(() => {}));
      await client.connect();
      const { rows } = await client.query(
        "select current_setting('port')::int as port, current_setting('search_path') as path, current_setting('tenant', true) as tenant",
      );
      assert.deepEqual(rows, [{ port: backend.port, path: 'tenant_schema,public', tenant: null }]);
    });
  }

  await t.test('SNI is case-insensitive: ACME.DB.EXAMPLE.TEST is tenant acme', async (t) => {
    const client = await connectPg(t, gateway, pki, { servername: tenantHost('acme').toUpperCase() });
    assert.deepEqual((await client.query("select current_setting('port')::int as port")).rows, [{ port: backend.port }]);
  });

  await t.test('a host name outside the suffixes (a customer CNAME) with options naming the tenant connects', async (t) => {
    const client = await connectPg(t, gateway, pki, {
      servername: 'postgres.customer.example.org',
      sslmode: 'require',
      options: '-c tenant=acme',
    });
    assert.deepEqual((await client.query("select current_setting('port')::int as port")).rows, [{ port: backend.port }]);
  });

  await t.test('psql to 127.0.0.1 with options=tenant=acme connects', async () => {
    const settings = {
      host: '127.0.0.1',
      port: String(gateway.address.port),
      user: 'app',
      dbname: 'app',
      sslmode: 'require',
      options: 'tenant=acme',
    };
    const run = await runPsql(settings, { sql: "select current_setting('port')", password: PASSWORD, home: dir });
    assert.deepEqual(run, { code: 0, stdout: `${backend.port}\n`, stderr: '' });
  });

  await t.test('neither SNI nor options: 08004 with a hint that shows both ways', async () => {
    const error = await connectError(viaIp(undefined));
    assert.deepEqual([error.severity, error.code, error.message], ['FATAL', '08004', 'no tenant in the connection']);
    assert.match(error.detail ?? '', /no TLS server name/);
    assert.match(error.hint ?? '', /<tenant>\.db\.example\.test/);
    assert.match(error.hint ?? '', /options=-c tenant=<tenant>/);
  });

  await t.test('psql without a tenant shows the hint', async () => {
    const settings = { host: '127.0.0.1', port: String(gateway.address.port), user: 'app', dbname: 'app', sslmode: 'require' };
    const run = await runPsql(settings, { password: PASSWORD, home: dir });
    assert.equal(run.code, 2);
    assert.match(run.stderr, /FATAL: {2}no tenant in the connection/);
    assert.match(run.stderr, /HINT: {2}Connect to <tenant>\.db\.example\.test, or add options=-c tenant=<tenant>/);
  });

  await t.test('SNI names acme and options name globex: 08004 naming both', async () => {
    const error = await connectError(viaSni('acme', { options: '-c tenant=globex' }));
    assert.equal(error.code, '08004');
    assert.match(error.message, /"acme".*"globex"/);
    // The same tenant both ways is fine.
    const agreeing = viaSni('acme', { options: '-c tenant=acme' });
    await agreeing.connect();
    await agreeing.end();
  });

  await t.test('a host name under the suffix that is not <tenant>.<suffix>: 08004', async () => {
    const error = await connectError(pgClient(gateway, pki, { servername: `a.b${SUFFIX}`, sslmode: 'require' }));
    assert.equal(error.code, '08004');
    assert.match(error.message, /does not name a tenant/);
  });

  await t.test('a suspended tenant: 08004; one in maintenance: 57P03', async () => {
    const suspended = await connectError(viaSni('frozen'));
    assert.deepEqual([suspended.code, suspended.message], ['08004', 'tenant "frozen" is suspended']);
    const maintenance = await connectError(viaSni('upkeep'));
    assert.deepEqual([maintenance.code, maintenance.message], ['57P03', 'tenant "upkeep" is in maintenance']);
  });

  await t.test('a client address outside the allow-list: 28000', async () => {
    const error = await connectError(viaSni('fenced'));
    assert.equal(error.code, '28000');
    assert.match(error.message, /not allowed for tenant "fenced"/);
    assert.doesNotMatch(`${error.message} ${error.detail ?? ''} ${error.hint ?? ''}`, /127\.0\.0\.1|10\.0\.0\.0/);
  });

  await t.test('the connection cap: 53300 while the one session is open, served again once it closed', async (t) => {
    const first = await connectPg(t, gateway, pki, { servername: tenantHost('tiny') });
    const error = await connectError(viaSni('tiny'));
    assert.deepEqual([error.code, error.message], ['53300', 'too many connections for tenant "tiny"']);
    await first.end();
    // The slot is free once the gateway has seen both legs of the first session close, which may
    // be a moment after the client's end() returned: retry a refused connect a bounded number of times.
    let attempts = 0;
    for (;;) {
      attempts++;
      const third = pgClient(gateway, pki, { servername: tenantHost('tiny') });
      third.on('error', () => {});
      try {
        await third.connect();
      } catch (error) {
        assert.equal((error as { code?: string }).code, '53300');
        assert.ok(attempts < 100, 'the slot of the closed session was never released');
        await new Promise((resolve) => setTimeout(resolve, 10));
        continue;
      }
      t.after(() => third.end().catch(() => {}));
      assert.deepEqual((await third.query('select 1 as one')).rows, [{ one: 1 }]);
      break;
    }
    t.diagnostic(`served again after ${attempts} attempt(s)`);
  });

  await t.test('refused clients leave the gateway serving', async (t) => {
    const client = await connectPg(t, gateway, pki, { servername: tenantHost('acme') });
    assert.deepEqual((await client.query('select 1 as one')).rows, [{ one: 1 }]);
  });
});

function pick(error: { severity?: string; code?: string; message: string; detail?: string; hint?: string }) {
  return { severity: error.severity, code: error.code, message: error.message, detail: error.detail, hint: error.hint };
}

/** The gateway's AuthenticationSASL and server-first-message for `user`, then the client goes away. */
async function serverFirst(t: TestContext, gateway: Gateway, pki: TestPki, user: string) {
  const { socket, messages, mechanisms } = await openToScram(t, gateway, pki, { tenant: 'acme', user });
  const scram = new ScramClientExchange({ password: 'irrelevant', channelBinding: 'disable' });
  const first = scram.start(mechanisms);
  socket.write(serializeSASLInitialResponse(first.mechanism, Buffer.from(first.message)));
  const next = await nextMessage(messages);
  const challenge = next?.type === 'E' ? assert.fail(`refused: ${errorFields(next).message}`) : parsed(next);
  assert.equal(challenge.kind, 'AuthenticationSASLContinue');
  const fields = new Map(
    (challenge.kind === 'AuthenticationSASLContinue' ? challenge.data.toString() : '')
      .split(',')
      .map((part) => [part[0], part.slice(2)] as const),
  );
  socket.destroy();
  return { mechanisms, salt: fields.get('s'), iterations: fields.get('i') };
}
