// When the tenant's database cannot be reached or trusted, the client that authenticated at the
// edge gets FATAL 08001 with a message that says which backend failure it was, and names no
// internal address or port (docs/architecture.md, "Errors"; apps/gateway/src/backend/failures.ts). The backends
// are real PostgreSQL 15 servers: one with an expired certificate, one without TLS, and one
// reached with a CA that did not sign its certificate, under a name its certificate does not
// carry, or with a client certificate its pg_hba refuses. After each, the gateway serves the next client.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { createTestPki, getFreePort, runPsql, type IssuedCertificate } from '@tenantgate/testing';
import {
  PASSWORD,
  assertNoInternalAddress,
  connectError,
  connectPg,
  pgClient,
  psqlSettings,
  scratchDir,
  startBackend,
  startGateway,
  tenantHost,
  type TenantEntry,
} from './harness.ts';

const CERT_HBA = ['hostssl all all 127.0.0.1/32 cert'];
const roles = [{ name: 'app', password: PASSWORD }];
const UNTRUSTED =
  /^could not verify the tenant database's certificate: it is not signed by the certificate authority configured for the tenant$/;
const MISNAMED = /^could not verify the tenant database's certificate: it is not issued for the name the tenant configured$/;
const CLIENT_CERT_REFUSED = /^the tenant's database refused the gateway's client certificate$/;

test('backend failures reach the client as FATAL 08001', async (t) => {
  const pki = await createTestPki();
  const dir = scratchDir(t, 'gw-backend-failures');
  const secretsDir = join(dir, 'secrets');
  await mkdir(secretsDir);
  // Client certificates the tenants name: the good backend refuses all three.
  await writeSecret(secretsDir, 'untrusted-client', await pki.client('app', { issuer: pki.wrongCa }));
  await writeSecret(secretsDir, 'expired-client', await pki.client('app', { expired: true }));
  await writeSecret(secretsDir, 'other-cn', await pki.client('someone-else'));
  const expiredServer = await pki.ca.issueServerCertificate({ dnsNames: ['localhost'], ipAddresses: ['127.0.0.1'], expired: true });
  const untrustedServer = await pki.wrongCa.issueServerCertificate({ dnsNames: ['localhost'], ipAddresses: ['127.0.0.1'] });
  const misnamedServer = await pki.ca.issueServerCertificate({ dnsNames: ['db9.elsewhere.example.test'] });
  const [good, expired, untrusted, misnamed, plaintext] = await Promise.all([
    // Only user app has a pg_hba entry on the good backend.
    startBackend(t, pki, {
      hba: ['hostssl all app 127.0.0.1/32 cert'],
      roles: [{ name: 'app' }],
      databases: [{ name: 'app', owner: 'app' }],
    }),
    startBackend(t, pki, { serverCert: expiredServer.chainPem, serverKey: expiredServer.keyPem, hba: CERT_HBA, roles: [{ name: 'app' }] }),
    startBackend(t, pki, {
      serverCert: untrustedServer.chainPem,
      serverKey: untrustedServer.keyPem,
      hba: CERT_HBA,
      roles: [{ name: 'app' }],
    }),
    startBackend(t, pki, {
      serverCert: misnamedServer.chainPem,
      serverKey: misnamedServer.keyPem,
      hba: CERT_HBA,
      roles: [{ name: 'app' }],
    }),
    startBackend(t, pki, {
      serverCert: undefined,
      serverKey: undefined,
      clientCa: undefined,
      hba: ['host all all 127.0.0.1/32 trust'],
      roles: [{ name: 'app' }],
    }),
  ]);
  const closedPort = await getFreePort();
  const at = (port: number, extra: Partial<TenantEntry['backend']> = {}) => ({ host: '127.0.0.1', port, database: 'app', ...extra });
  const tenants: TenantEntry[] = [
    { id: 'good', backend: at(good.port), roles },
    { id: 'wrong-ca', backend: at(untrusted.port), roles },
    { id: 'other-tenant-ca', backend: at(good.port, { caCertificate: pki.wrongCa.certPem }), roles },
    { id: 'wrong-name', backend: at(misnamed.port), roles },
    { id: 'other-server-name', backend: at(good.port, { serverName: 'db7.internal.example.test' }), roles },
    { id: 'expired', backend: at(expired.port), roles },
    { id: 'untrusted-client', backend: at(good.port, { clientCertificate: 'untrusted-client' }), roles },
    { id: 'expired-client', backend: at(good.port, { clientCertificate: 'expired-client' }), roles },
    { id: 'other-cn', backend: at(good.port, { clientCertificate: 'other-cn' }), roles },
    { id: 'no-hba-entry', backend: at(good.port), roles: [{ name: 'app', password: PASSWORD, backendUser: 'acme_internal_role' }] },
    { id: 'no-tls', backend: at(plaintext.port), roles },
    { id: 'unreachable', backend: at(closedPort), roles },
  ];
  const gateway = await startGateway(t, { pki, dir, tenants, settings: { secretsDir } });
  const portOf: Record<string, number> = {
    expired: expired.port,
    'wrong-ca': untrusted.port,
    'wrong-name': misnamed.port,
    'no-tls': plaintext.port,
    unreachable: closedPort,
  };

  /** The FATAL a pg client gets for `tenant`, and proof that the gateway still serves `good`. */
  async function refusal(tenant: string) {
    const error = await connectError(pgClient(gateway, pki, { servername: tenantHost(tenant) }));
    assertNoInternalAddress(error, portOf[tenant] ?? good.port);
    assert.doesNotMatch(error.message, /db7\.internal|db9\.elsewhere/, 'server names are internal too');
    const next = await pgClient(gateway, pki, { servername: tenantHost('good') });
    await next.connect();
    try {
      assert.deepEqual((await next.query('select current_user as u')).rows, [{ u: 'app' }]);
    } finally {
      await next.end();
    }
    return error;
  }

  const cases: { what: string; tenant: string; message: RegExp }[] = [
    { what: 'a backend certificate from an untrusted CA', tenant: 'wrong-ca', message: UNTRUSTED },
    { what: "a backend certificate the tenant's own CA did not sign", tenant: 'other-tenant-ca', message: UNTRUSTED },
    { what: 'a backend certificate for another host name', tenant: 'wrong-name', message: MISNAMED },
    { what: "a backend certificate without the tenant's serverName", tenant: 'other-server-name', message: MISNAMED },
    {
      what: 'an expired certificate',
      tenant: 'expired',
      message: /^could not verify the tenant database's certificate: certificate has expired$/,
    },
    {
      what: "a backend that refuses the gateway's client certificate (signed by a CA it does not trust)",
      tenant: 'untrusted-client',
      message: CLIENT_CERT_REFUSED,
    },
    {
      what: "a backend that refuses the gateway's client certificate (expired)",
      tenant: 'expired-client',
      message: CLIENT_CERT_REFUSED,
      // OpenSSL 3 names alerts 42-46 ERR_SSL_SSL/TLS_ALERT_*.
    },
    { what: 'a backend that does not speak TLS', tenant: 'no-tls', message: /^the tenant's database does not accept TLS$/ },
    {
      what: 'a backend port nobody listens on',
      tenant: 'unreachable',
      message: /^could not connect to the tenant's database: connection refused$/,
    },
  ];
  for (const { what, tenant, message } of cases) {
    await t.test(`${what}: FATAL 08001 with no internal address, then the next client is served`, async () => {
      const error = await refusal(tenant);
      assert.equal(error.code, '08001');
      assert.equal(error.severity, 'FATAL');
      assert.match(error.message, /tenant('s)? database/);
    });
    await t.test(`${what}: the message says which failure`, async () => {
      assert.match((await refusal(tenant)).message, message);
    });
  }

  await t.test("a client certificate whose CN is not the user: the backend's own refusal, its address masked", async () => {
    // pg_hba `cert` checks the CN against the user after TLS: PostgreSQL's FATAL 28000 is passed on.
    const error = await refusal('other-cn');
    assert.equal(error.code, '28000');
    assert.match(error.message, /^certificate authentication failed for user "app"$/);
  });

  await t.test("no pg_hba entry for the gateway: PostgreSQL's 28000, with the gateway's address masked", async () => {
    const error = await refusal('no-hba-entry');
    assert.equal(error.code, '28000');
    assert.match(error.message, /^no pg_hba\.conf entry for host "\(the gateway\)", user "[^"]+", database "app"/);
  });

  await t.test('a backend refusal does not show the backend role the client was mapped to', async () => {
    const error = await refusal('no-hba-entry');
    assert.doesNotMatch(`${error.message} ${error.detail ?? ''}`, /acme_internal_role/);
  });

  await t.test('a wrong password for a tenant whose backend is broken: 28P01, not the backend failure', async () => {
    for (const tenant of ['expired', 'unreachable']) {
      const error = await connectError(pgClient(gateway, pki, { servername: tenantHost(tenant), password: 'not-it' }));
      assert.deepEqual([error.code, error.message], ['28P01', 'password authentication failed for user "app"']);
    }
  });

  await t.test('psql shows the backend failure as the server error', async (t) => {
    const caFile = join(scratchDir(t, 'gw-backend-failures-psql'), 'ca.pem');
    await writeFile(caFile, pki.ca.certPem);
    const run = await runPsql(psqlSettings(gateway, caFile, 'expired', { dbname: 'app' }), { password: PASSWORD, home: dir });
    assert.equal(run.code, 2);
    assert.match(run.stderr, /FATAL: {2}could not verify the tenant database's certificate: certificate has expired/);
    assert.doesNotMatch(run.stderr, new RegExp(`${expired.port}`));
  });

  await t.test('the good tenant still works after all of that', async (t) => {
    const client = await connectPg(t, gateway, pki, { servername: tenantHost('good') });
    assert.deepEqual((await client.query('select 1 as one')).rows, [{ one: 1 }]);
  });
});

async function writeSecret(dir: string, name: string, certificate: IssuedCertificate): Promise<void> {
  await writeFile(join(dir, `${name}.crt`), certificate.chainPem);
  await writeFile(join(dir, `${name}.key`), certificate.keyPem, { mode: 0o600 });
}
