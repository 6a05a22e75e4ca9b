// tls-server-end-point channel binding data (RFC 5929 §4) for SCRAM-SHA-256-PLUS: the hash of
// the server's certificate, with the hash read from the certificate's signature algorithm.
// @see https://www.rfc-editor.org/rfc/rfc5929#section-4

import { X509Certificate, createHash } from 'node:crypto';
import { ScramError } from './errors.ts';

// RFC 5929 §4.1: hash the certificate with the hash of its signature algorithm, except MD5 and
// SHA-1, which become SHA-256. Others (RSASSA-PSS, Ed25519, Ed448) have no single hash, and
// PostgreSQL and libpq refuse channel binding for them too.
const END_POINT_HASHES: Readonly<Record<string, string>> = {
  '1.2.840.113549.1.1.4': 'sha256', // md5WithRSAEncryption
  '1.2.840.113549.1.1.5': 'sha256', // sha1WithRSAEncryption
  '1.2.840.113549.1.1.14': 'sha224', // sha224WithRSAEncryption
  '1.2.840.113549.1.1.11': 'sha256', // sha256WithRSAEncryption
  '1.2.840.113549.1.1.12': 'sha384', // sha384WithRSAEncryption
  '1.2.840.113549.1.1.13': 'sha512', // sha512WithRSAEncryption
  '1.2.840.10045.4.1': 'sha256', // ecdsa-with-SHA1
  '1.2.840.10045.4.3.1': 'sha224', // ecdsa-with-SHA224
  '1.2.840.10045.4.3.2': 'sha256', // ecdsa-with-SHA256
  '1.2.840.10045.4.3.3': 'sha384', // ecdsa-with-SHA384
  '1.2.840.10045.4.3.4': 'sha512', // ecdsa-with-SHA512
  '1.2.840.10040.4.3': 'sha256', // dsa-with-sha1
  '2.16.840.1.101.3.4.3.1': 'sha224', // dsa-with-sha224
  '2.16.840.1.101.3.4.3.2': 'sha256', // dsa-with-sha256
};

/**
 * The `tls-server-end-point` channel binding data of a certificate (DER, PEM, or parsed). Throws
 * a ScramError for a signature algorithm without a single hash: do not offer PLUS then.
 */
export function tlsServerEndPoint(certificate: Uint8Array | X509Certificate): Buffer {
  const der = certificateDer(certificate);
  const oid = signatureAlgorithmOid(der);
  const hash = END_POINT_HASHES[oid];
  if (hash === undefined) {
    throw new ScramError(`tls-server-end-point is not defined for certificates signed with algorithm ${oid}`);
  }
  return createHash(hash).update(der).digest();
}

function certificateDer(certificate: Uint8Array | X509Certificate): Buffer {
  if (certificate instanceof X509Certificate) return certificate.raw;
  try {
    return new X509Certificate(certificate).raw;
  } catch (cause) {
    throw new ScramError('tls-server-end-point needs an X.509 certificate (DER or PEM)', { cause });
  }
}

/** Certificate ::= SEQUENCE { tbsCertificate, signatureAlgorithm, signature } (RFC 5280 §4.1). */
function signatureAlgorithmOid(der: Buffer): string {
  const certificate = derElement(der, 0, 0x30);
  const tbsCertificate = derElement(der, certificate.start, 0x30);
  const algorithm = derElement(der, tbsCertificate.end, 0x30);
  const oid = derElement(der, algorithm.start, 0x06);
  return oidToString(der.subarray(oid.start, oid.end));
}

/** One DER element with `tag` at `offset`: where its contents start and end (X.690 §8.1). */
function derElement(der: Buffer, offset: number, tag: number): { start: number; end: number } {
  let start = offset + 2;
  let length = der[offset + 1] ?? 0;
  if (length & 0x80) {
    const count = length & 0x7f; // long form: the length takes this many bytes
    if (count === 0 || count > 4 || start + count > der.length) throw new ScramError('certificate DER is malformed');
    length = der.readUIntBE(start, count);
    start += count;
  }
  if (der[offset] !== tag || start + length > der.length) throw new ScramError('certificate DER is malformed');
  return { start, end: start + length };
}

function oidToString(bytes: Buffer): string {
  const parts = [Math.floor(bytes[0] / 40), bytes[0] % 40];
  let value = 0;
  for (const byte of bytes.subarray(1)) {
    value = value * 128 + (byte & 0x7f);
    if (byte < 0x80) {
      parts.push(value);
      value = 0;
    }
  }
  return parts.join('.');
}
