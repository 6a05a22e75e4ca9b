// Short-lived client certificates issued by the control plane (docs/architecture.md, step 8):
// a client sends a CSR (its key stays with it), gets a certificate naming its role and tenant,
// and connects with no password to a certificate-mode tenant whose route carries the issuing
// CA; the certificate is refused by another tenant and for another role, and after a revoke.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { CertificateIssuer } from '@tenantgate/control-plane';
import { createCertificateAuthority, createTestPki, runPsql, startRedis } from '@tenantgate/testing';
import { call, eventually, GATEWAY_TOKEN, startTestControlPlane } from '../control-plane/harness.ts';
import { controlPlaneDirectory, createTestGateway, psqlSettings, scratchDir, startCertBackend } from './harness.ts';

const run = promisify(execFile);

test('a certificate issued by the control plane logs its role into its tenant only, until a revoke', async (t) => {
  const pki = await createTestPki();
  const dir = scratchDir(t, 'gw-issued-certificates');
  const backend = await startCertBackend(t, pki);
  await backend.sql('create role other login');
  const redis = await startRedis();
  t.after(() => redis.stop());
  const issuingCa = await createCertificateAuthority({ commonName: 'tenantgate issuing CA' });
  const controlPlane = await startTestControlPlane(t, {
    redisUrl: redis.url,
    issuer: await CertificateIssuer.load(issuingCa.certPem, issuingCa.keyPem),
  });
  for (const id of ['acme', 'globex']) {
    const created = await call(controlPlane.url, 'POST', '/v1/tenants', {
      json: {
        id,
        authMode: 'certificate',
        backend: { host: '127.0.0.1', port: backend.port, database: 'app' },
        clientCertificates: { maxTtlSeconds: 600 },
      },
    });
    assert.equal(created.status, 201, JSON.stringify(created.body));
  }
  const route = await call(controlPlane.url, 'GET', '/v1/routes/acme', { token: GATEWAY_TOKEN });
  assert.equal(route.body.clientCertificates.issuerCaCertificate, issuingCa.certPem);

  const tenants = await controlPlaneDirectory(controlPlane.url, GATEWAY_TOKEN, redis.url);
  t.after(() => tenants.close());
  const gateway = await createTestGateway(pki, tenants);
  t.after(() => gateway.close());
  const caFile = join(dir, 'ca.pem');
  await writeFile(caFile, pki.ca.certPem);

  // The client's key and CSR, made where the key stays.
  const keyFile = join(dir, 'client.key');
  const csrFile = join(dir, 'client.csr');
  await run('openssl', [
    'req',
    '-new',
    '-newkey',
    'ec',
    '-pkeyopt',
    'ec_paramgen_curve:P-256',
    '-nodes',
    '-keyout',
    keyFile,
    '-subj',
    '/CN=ignored',
    '-out',
    csrFile,
  ]);
  const csr = await readFile(csrFile, 'utf8');
  const issue = (ttlSeconds: number) =>
    call(controlPlane.url, 'POST', '/v1/tenants/acme/roles/app/certificates', { json: { csr, ttlSeconds } });
  assert.equal((await issue(601)).status, 400, "over the tenant's maximum lifetime");
  const notCsr = await call(controlPlane.url, 'POST', '/v1/tenants/acme/roles/app/certificates', {
    json: { csr: issuingCa.certPem, ttlSeconds: 300 },
  });
  assert.equal(notCsr.status, 400);
  assert.deepEqual(notCsr.body.details.issues, [{ path: '/csr', message: '"csr" is not a PEM certificate signing request (PKCS #10)' }]);
  const issued = await issue(300);
  assert.equal(issued.status, 201, JSON.stringify(issued.body));
  assert.match(issued.body.serialNumber, /^[0-9A-F]{32}$/);
  assert.ok(Date.parse(issued.body.notAfter) - Date.now() <= 300_000);
  const certFile = join(dir, 'client.crt');
  const writeCertificate = (pem: string) => writeFile(certFile, pem);
  await writeCertificate(issued.body.certificate);

  const psql = (tenant: string, user = 'app') =>
    runPsql(psqlSettings(gateway, caFile, tenant, { user, sslcert: certFile, sslkey: keyFile }), { home: dir, sql: 'select current_user' });
  const ok = await psql('acme');
  assert.equal(ok.code, 0, ok.stderr);
  assert.equal(ok.stdout.trim(), 'app');
  assert.match((await psql('globex')).stderr, /DETAIL: {2}The client certificate was issued for another database\./);
  assert.match((await psql('acme', 'other')).stderr, /does not name the role "other"/);

  const revoked = await call(controlPlane.url, 'POST', '/v1/tenants/acme/certificates/revoke');
  assert.equal(revoked.status, 200);
  // The revoke reaches the gateway through the invalidation channel.
  await eventually('the revoke to reach the gateway', async () =>
    /issued before this database's client certificates were revoked/.test((await psql('acme')).stderr) ? true : undefined,
  );
  // A certificate issued after the revoke works (it may start at the next whole second).
  await writeCertificate((await issue(300)).body.certificate);
  await eventually('the new certificate to be valid', async () => ((await psql('acme')).code === 0 ? true : undefined));
});

test('a control plane without an issuing CA answers 501 and keeps requiring a client CA for certificate tenants', async (t) => {
  const controlPlane = await startTestControlPlane(t);
  const csr = 'x';
  const reply = await call(controlPlane.url, 'POST', '/v1/tenants/acme/roles/app/certificates', { json: { csr } });
  assert.equal(reply.status, 501);
  assert.equal(reply.body.code, 'TG_ERR_ISSUING_NOT_CONFIGURED');
  const created = await call(controlPlane.url, 'POST', '/v1/tenants', {
    json: { id: 'acme', authMode: 'certificate', backend: { host: '127.0.0.1', port: 5432 } },
  });
  assert.equal(created.status, 400);
  assert.equal(created.body.details.issues[0].path, '/clientCaCertificate');
});
