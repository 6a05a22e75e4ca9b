// Certificate authentication at the edge (docs/architecture.md, step 8): a tenant in
// `certificate` mode lets in a client whose certificate chains to its clientCaCertificate and
// names the role, with no password; `certificate+scram` needs both; every other certificate is
// 28000 saying why, and tenants in SCRAM mode see no difference from the listener asking.
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import pg from 'pg';
import postgres from 'postgres';
import {
  createCertificateAuthority,
  createTestPki,
  runPsql,
  writeCertificateFiles,
  type IssuedCertificate,
  type TestPki,
} from '@tenantgate/testing';
import type { Gateway } from '@tenantgate/gateway';
import { PASSWORD, psqlSettings, scratchDir, startCertBackend, startGateway, tenantHost } from './harness.ts';

interface Fixture {
  readonly pki: TestPki;
  readonly gateway: Gateway;
  readonly dir: string;
  readonly caFile: string;
  /** A client certificate for `app` from the tenants' client CA, and what else the tests need. */
  readonly certificates: {
    readonly app: IssuedCertificate;
    readonly expired: IssuedCertificate;
    readonly otherCa: IssuedCertificate;
    readonly viaIntermediate: IssuedCertificate;
  };
}

async function certificateFixture(t: TestContext): Promise<Fixture> {
  const pki = await createTestPki();
  const dir = scratchDir(t, 'gw-certificate-auth');
  const backend = await startCertBackend(t, pki);
  await backend.sql('create role other login');
  const clientCa = await createCertificateAuthority({ commonName: 'acme client CA' });
  const intermediate = await clientCa.issueIntermediate({ commonName: 'acme issuing CA' });
  const on = { host: '127.0.0.1', port: backend.port, database: 'app' };
  const gateway = await startGateway(t, {
    pki,
    dir,
    tenants: [
      // The bundle holds the issuing intermediate too: a certificate it issued is trusted.
      { id: 'certs', authMode: 'certificate', clientCaCertificate: clientCa.certPem + intermediate.certPem, backend: on, roles: [] },
      {
        id: 'both',
        authMode: 'certificate+scram',
        clientCaCertificate: clientCa.certPem,
        backend: on,
        roles: [{ name: 'app', password: PASSWORD }],
      },
      { id: 'scram', backend: on, roles: [{ name: 'app', password: PASSWORD }] },
      // One role of a SCRAM tenant needs a certificate; the other logs in with its password.
      {
        id: 'mixed',
        clientCaCertificate: clientCa.certPem,
        backend: on,
        roles: [
          { name: 'app', password: PASSWORD, authMode: 'certificate' },
          { name: 'reader', password: PASSWORD, backendUser: 'app' },
        ],
      },
    ],
  });
  const caFile = join(dir, 'ca.pem');
  await writeFile(caFile, pki.ca.certPem);
  return {
    pki,
    gateway,
    dir,
    caFile,
    certificates: {
      app: await clientCa.issueClientCertificate({ commonName: 'app' }),
      expired: await clientCa.issueClientCertificate({ commonName: 'app', expired: true }),
      otherCa: await pki.client('app'),
      viaIntermediate: await intermediate.issueClientCertificate({ commonName: 'app' }),
    },
  };
}

/** psql to the tenant as `user` with the certificate's files, and the password when given. */
async function psqlWith(
  fixture: Fixture,
  tenant: string,
  certificate: IssuedCertificate | undefined,
  options: { user?: string; password?: string } = {},
) {
  const extra: Record<string, string> = { user: options.user ?? 'app' };
  if (certificate !== undefined) {
    const dir = join(fixture.dir, `cert-${Math.random().toString(36).slice(2)}`);
    await mkdir(dir);
    const files = await writeCertificateFiles(dir, certificate);
    Object.assign(extra, { sslcert: files.certFile, sslkey: files.keyFile });
  }
  return runPsql(psqlSettings(fixture.gateway, fixture.caFile, tenant, extra), {
    home: fixture.dir,
    sql: 'select current_user',
    ...(options.password === undefined ? {} : { password: options.password }),
  });
}

test('psql with a certificate of the tenant CA reaches a certificate-mode tenant with no password', async (t) => {
  const fixture = await certificateFixture(t);
  const run = await psqlWith(fixture, 'certs', fixture.certificates.app);
  assert.equal(run.code, 0, run.stderr);
  assert.equal(run.stdout.trim(), 'app');
  const chained = await psqlWith(fixture, 'certs', fixture.certificates.viaIntermediate);
  assert.equal(chained.code, 0, `issued by an intermediate of the bundle: ${chained.stderr}`);
});

test('each wrong certificate is refused with 28000 saying which it was', async (t) => {
  const fixture = await certificateFixture(t);
  const cases: [string, IssuedCertificate | undefined, string, RegExp][] = [
    ['none', undefined, 'app', /FATAL: {2}connection requires a valid client certificate\nDETAIL: {2}No client certificate was sent\./],
    ['another CA', fixture.certificates.otherCa, 'app', /not signed by this database's client certificate authority/],
    ['expired', fixture.certificates.expired, 'app', /The client certificate has expired\./],
    [
      'another role',
      fixture.certificates.app,
      'other',
      /certificate authentication failed for user "other"\nDETAIL: {2}The client certificate does not name the role "other"/,
    ],
  ];
  for (const [what, certificate, user, message] of cases) {
    const run = await psqlWith(fixture, 'certs', certificate, { user });
    assert.equal(run.code, 2, what);
    assert.match(run.stderr, message, what);
  }
  // The same certificate on a tenant that trusts another CA's certificates only: SCRAM mode ignores it.
  const scram = await psqlWith(fixture, 'scram', fixture.certificates.otherCa, { password: PASSWORD });
  assert.equal(scram.code, 0, scram.stderr);
});

test('certificate+scram needs both the certificate and the password', async (t) => {
  const fixture = await certificateFixture(t);
  assert.equal((await psqlWith(fixture, 'both', fixture.certificates.app, { password: PASSWORD })).code, 0);
  const wrongPassword = await psqlWith(fixture, 'both', fixture.certificates.app, { password: 'wrong' });
  assert.match(wrongPassword.stderr, /password authentication failed for user "app"/);
  const noCertificate = await psqlWith(fixture, 'both', undefined, { password: PASSWORD });
  assert.match(noCertificate.stderr, /connection requires a valid client certificate/);
});

test('one role may require a certificate in a tenant whose other roles use passwords', async (t) => {
  const fixture = await certificateFixture(t);
  const withCertificate = await psqlWith(fixture, 'mixed', fixture.certificates.app);
  assert.equal(withCertificate.code, 0, withCertificate.stderr);
  const passwordOnly = await psqlWith(fixture, 'mixed', undefined, { password: PASSWORD });
  assert.match(passwordOnly.stderr, /connection requires a valid client certificate/);
  const reader = await psqlWith(fixture, 'mixed', undefined, { user: 'reader', password: PASSWORD });
  assert.equal(reader.code, 0, reader.stderr);
});

test('a tenant in SCRAM mode is unaffected by the listener asking for certificates', async (t) => {
  const fixture = await certificateFixture(t);
  const run = await psqlWith(fixture, 'scram', undefined, { password: PASSWORD });
  assert.equal(run.code, 0, run.stderr);
});

test('pg and postgres.js log in with a client certificate', async (t) => {
  const fixture = await certificateFixture(t);
  const { app } = fixture.certificates;
  // Each driver its own object: pg hides `key` from enumeration on the one it is given.
  const tls = () => ({ servername: tenantHost('certs'), ca: fixture.pki.ca.certPem, cert: app.chainPem, key: app.keyPem });
  const client = new pg.Client({ host: '127.0.0.1', port: fixture.gateway.address.port, user: 'app', database: 'app', ssl: tls() });
  // The backend stops at teardown: that must not become an unhandled 'error'.
  client.on('error', () => {});
  t.after(() => client.end().catch(() => {}));
  await client.connect();
  assert.deepEqual((await client.query('select current_user as u')).rows, [{ u: 'app' }]);
  const sql = postgres({ host: '127.0.0.1', port: fixture.gateway.address.port, user: 'app', database: 'app', ssl: tls(), max: 1 });
  t.after(() => sql.end({ timeout: 1 }));
  assert.deepEqual([...(await sql`select current_user as u`)], [{ u: 'app' }]);
});
