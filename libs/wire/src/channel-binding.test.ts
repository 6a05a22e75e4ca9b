import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { describe, test } from 'node:test';
import { tlsServerEndPoint } from './channel-binding.ts';
import { ScramError } from './errors.ts';
import { CERTIFICATES } from './testing/certificates.ts';

describe('tlsServerEndPoint', () => {
  // RFC 5929 §4.1: the signature's hash, except MD5 and SHA-1, which become SHA-256.
  const cases: Array<[keyof typeof CERTIFICATES, string]> = [
    ['ecdsaSha1', 'sha256'],
    ['ecdsaSha384', 'sha384'],
    ['ecdsaSha512', 'sha512'],
    ['rsaMd5', 'sha256'],
  ];
  for (const [name, hash] of cases) {
    test(`${name} certificates are hashed with ${hash}`, () => {
      const certificate = CERTIFICATES[name];
      const expected = createHash(hash).update(certificate.raw).digest();
      assert.deepEqual(tlsServerEndPoint(certificate), expected);
      assert.deepEqual(tlsServerEndPoint(certificate.raw), expected);
      assert.deepEqual(tlsServerEndPoint(Buffer.from(certificate.toString())), expected, 'PEM');
    });
  }

  test('a certificate without a single signature hash (Ed25519) or no certificate at all is a ScramError', () => {
    const ed25519 = /tls-server-end-point is not defined .* 1\.3\.101\.112/;
    assert.throws(() => tlsServerEndPoint(CERTIFICATES.ed25519), ed25519);
    assert.throws(() => tlsServerEndPoint(Buffer.from('not a certificate')), ScramError);
    assert.throws(() => tlsServerEndPoint(CERTIFICATES.rsaMd5.raw.subarray(0, 100)), ScramError);
  });
});
