// Channel binding to a PostgreSQL with an RSA certificate (sha256WithRSAEncryption) from the
// fixture's RSA CA; the default backend certificate is ECDSA (scram-postgres.test.ts).
import { createCertificateAuthority } from '@tenantgate/testing';
import { channelBindingTests } from './postgres-channel-binding.ts';

channelBindingTests('an RSA (sha256WithRSAEncryption)', async () => {
  const ca = await createCertificateAuthority({ keyAlgorithm: 'rsa-2048' });
  const server = await ca.issueServerCertificate({ dnsNames: ['localhost'], ipAddresses: ['127.0.0.1'], keyAlgorithm: 'rsa-2048' });
  return { caPem: ca.certPem, server, endPointHash: 'sha256', signatureAlgorithmOid: '1.2.840.113549.1.1.11' };
});
