// Channel binding to a PostgreSQL whose certificate is signed with ecdsa-with-SHA384: the binding
// data is then a SHA-384 hash (RFC 5929 §4.1), which a fixed SHA-256 would get wrong.
import { channelBindingTests } from './postgres-channel-binding.ts';
import { issueHashSignedChain } from './hash-signed-certificates.ts';

channelBindingTests('an ecdsa-with-SHA384', async () => {
  const { caPem, server } = await issueHashSignedChain('ecdsa-p256', 'SHA-384', ['localhost']);
  return { caPem, server, endPointHash: 'sha384', signatureAlgorithmOid: '1.2.840.10045.4.3.3' };
});
