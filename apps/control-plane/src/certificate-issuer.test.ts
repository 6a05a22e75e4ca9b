import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { test } from 'node:test';
import { createCertificateAuthority } from '@tenantgate/testing';
import { CertificateIssuer, CsrError } from './certificate-issuer.ts';

test('the issuing CA must be a CA, with its own key', async () => {
  const ca = await createCertificateAuthority({ commonName: 'issuing' });
  const other = await createCertificateAuthority({ commonName: 'other' });
  const leaf = await ca.issueClientCertificate({ commonName: 'app' });
  await assert.rejects(CertificateIssuer.load(ca.certPem, other.keyPem), /does not belong to the issuing certificate/);
  await assert.rejects(CertificateIssuer.load(leaf.certPem, leaf.keyPem), /not a CA/);
  const rsa = await createCertificateAuthority({ commonName: 'rsa issuing', keyAlgorithm: 'rsa-2048' });
  assert.ok(await CertificateIssuer.load(rsa.certPem, rsa.keyPem));
});

test("a certificate names the role as CN and the tenant as a URI, for the CSR's key, and chains to the CA", async () => {
  const ca = await createCertificateAuthority({ commonName: 'issuing' });
  const issuer = await CertificateIssuer.load(ca.certPem, ca.keyPem);
  const csr = execFileSync(
    'openssl',
    ['req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', '/dev/null', '-subj', '/CN=admin'],
    {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'ignore'],
    },
  );
  const now = new Date('2026-06-01T12:00:00.400Z');
  const issued = await issuer.issue(csr, 'acme', 'app', 600, now);
  const certificate = new X509Certificate(issued.certificate);
  assert.match(certificate.subject, /^CN=app$/m);
  assert.equal(certificate.subjectAltName, 'URI:urn:tenantgate:tenant:acme');
  assert.ok(certificate.checkIssued(new X509Certificate(ca.certPem)) && certificate.verify(new X509Certificate(ca.certPem).publicKey));
  assert.equal(certificate.validFromDate.toISOString(), '2026-06-01T12:00:00.000Z');
  assert.equal(issued.notAfter.toISOString(), '2026-06-01T12:10:00.000Z');
  assert.equal(certificate.serialNumber, issued.serialNumber);
  // The serial answered is the certificate's, whatever random bytes it got (a leading zero byte
  // once made them differ, one issue in 128).
  for (let i = 0; i < 400; i++) {
    const again = await issuer.issue(csr, 'acme', 'app', 600, now);
    assert.equal(new X509Certificate(again.certificate).serialNumber, again.serialNumber);
  }
  await assert.rejects(issuer.issue('not a CSR', 'acme', 'app', 600), CsrError);
});
