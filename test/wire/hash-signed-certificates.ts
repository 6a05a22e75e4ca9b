// Server certificates signed with a chosen hash. The fixture's CAs always sign with SHA-256, but
// tls-server-end-point hashes a certificate with the hash of its signature algorithm (RFC 5929
// §4.1): only a certificate signed with SHA-384 or SHA-512 shows that the hash is not fixed.
// @see https://www.rfc-editor.org/rfc/rfc5929#section-4.1
import 'reflect-metadata'; // @peculiar/x509's dependency injection needs it first
import * as x509 from '@peculiar/x509';
import { KeyObject, X509Certificate, randomBytes, webcrypto } from 'node:crypto';
import type { IssuedCertificate } from '@tenantgate/testing';

export type SigningKey = 'ecdsa-p256' | 'rsa-2048';
export type SigningHash = 'SHA-256' | 'SHA-384' | 'SHA-512';

export interface HashSignedChain {
  /** The self-signed root that issued `server` (PEM), for the client's trust store. */
  readonly caPem: string;
  readonly server: IssuedCertificate;
}

const crypto = webcrypto;
const HOUR_MS = 3_600_000;

interface Algorithm {
  generate: RsaHashedKeyGenParams | EcKeyGenParams;
  sign: RsaHashedImportParams | EcdsaParams;
  leafUsages: x509.KeyUsageFlags;
}

type RsaHashedKeyGenParams = webcrypto.RsaHashedKeyGenParams;
type EcKeyGenParams = webcrypto.EcKeyGenParams;
type RsaHashedImportParams = webcrypto.RsaHashedImportParams;
type EcdsaParams = webcrypto.EcdsaParams;

function algorithm(key: SigningKey, hash: SigningHash): Algorithm {
  if (key === 'ecdsa-p256') {
    return {
      generate: { name: 'ECDSA', namedCurve: 'P-256' },
      sign: { name: 'ECDSA', hash },
      leafUsages: x509.KeyUsageFlags.digitalSignature,
    };
  }
  return {
    generate: { name: 'RSASSA-PKCS1-v1_5', modulusLength: 2048, publicExponent: new Uint8Array([1, 0, 1]), hash },
    sign: { name: 'RSASSA-PKCS1-v1_5', hash },
    // TLS 1.2 RSA key exchange encrypts with the certified key.
    leafUsages: x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyEncipherment,
  };
}

/** A root and a server certificate for `dnsNames`, both of `key` and signed with `hash`. */
export async function issueHashSignedChain(key: SigningKey, hash: SigningHash, dnsNames: readonly string[]): Promise<HashSignedChain> {
  const chosen = algorithm(key, hash);
  const [caKeys, serverKeys] = await Promise.all([generateKeys(chosen), generateKeys(chosen)]);
  const ca = await signRoot(chosen, caKeys, `CN=tenantgate ${key} ${hash} test CA`);
  const server = await signServer(chosen, ca, caKeys, serverKeys.publicKey, dnsNames);
  const cert = new X509Certificate(Buffer.from(server.rawData));
  const certPem = cert.toString();
  const keyPem = KeyObject.from(serverKeys.privateKey).export({ type: 'pkcs8', format: 'pem' }).toString();
  return { caPem: new X509Certificate(Buffer.from(ca.rawData)).toString(), server: { certPem, keyPem, chainPem: certPem, cert } };
}

function generateKeys(chosen: Algorithm): Promise<webcrypto.CryptoKeyPair> {
  return crypto.subtle.generateKey(chosen.generate, true, ['sign', 'verify']);
}

async function signRoot(chosen: Algorithm, keys: webcrypto.CryptoKeyPair, name: string): Promise<x509.X509Certificate> {
  return x509.X509CertificateGenerator.create(
    {
      serialNumber: serialNumber(),
      subject: name,
      issuer: name,
      ...validity(),
      publicKey: keys.publicKey,
      signingKey: keys.privateKey,
      signingAlgorithm: chosen.sign,
      extensions: [
        new x509.BasicConstraintsExtension(true, undefined, true),
        new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
        await x509.SubjectKeyIdentifierExtension.create(keys.publicKey, false, crypto),
      ],
    },
    crypto,
  );
}

async function signServer(
  chosen: Algorithm,
  ca: x509.X509Certificate,
  caKeys: webcrypto.CryptoKeyPair,
  publicKey: webcrypto.CryptoKey,
  dnsNames: readonly string[],
): Promise<x509.X509Certificate> {
  return x509.X509CertificateGenerator.create(
    {
      serialNumber: serialNumber(),
      subject: `CN=${dnsNames[0]}`,
      // The issuer's own encoded name, so OpenSSL's name-based issuer lookup matches byte for byte.
      issuer: ca.subjectName,
      ...validity(),
      publicKey,
      signingKey: caKeys.privateKey,
      signingAlgorithm: chosen.sign,
      extensions: [
        new x509.BasicConstraintsExtension(false, undefined, true),
        new x509.KeyUsagesExtension(chosen.leafUsages, true),
        new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth]),
        new x509.SubjectAlternativeNameExtension(dnsNames.map((value) => ({ type: 'dns' as const, value }))),
        await x509.SubjectKeyIdentifierExtension.create(publicKey, false, crypto),
        await x509.AuthorityKeyIdentifierExtension.create(caKeys.publicKey, false, crypto),
      ],
    },
    crypto,
  );
}

function validity(): { notBefore: Date; notAfter: Date } {
  const now = Date.now();
  return { notBefore: new Date(now - HOUR_MS), notAfter: new Date(now + 24 * HOUR_MS) };
}

/** 16 random bytes, positive and without a leading zero byte (DER). */
function serialNumber(): string {
  const bytes = randomBytes(16);
  bytes[0] = (bytes[0]! & 0x7f) | 0x40;
  return bytes.toString('hex');
}
