// Short-lived client certificates for a tenant's roles, signed by the control plane's issuing CA
// (CONTROL_PLANE_CA_CERT / CONTROL_PLANE_CA_KEY). The client sends a CSR, so its private key
// never leaves it; the certificate names the role as its CN (PostgreSQL's clientname=CN) and the
// tenant as a URI subjectAltName, which the gateway checks, so a certificate for one tenant's
// role is refused by every other tenant that trusts the same CA.
// @peculiar/x509's dependency injection needs the Reflect metadata API loaded first.
import 'reflect-metadata';
import * as x509 from '@peculiar/x509';
import { X509Certificate, createPrivateKey, randomBytes, webcrypto } from 'node:crypto';
import { tenantCertificateUri } from '@tenantgate/tenancy';

const crypto = webcrypto;
type CryptoKey = webcrypto.CryptoKey;
type SigningAlgorithm = webcrypto.EcdsaParams | webcrypto.RsaHashedImportParams;

export interface IssuedClientCertificate {
  /** PEM, the leaf only (the issuing CA is what the gateway trusts). */
  readonly certificate: string;
  /** Hex, as OpenSSL prints it. */
  readonly serialNumber: string;
  readonly notBefore: Date;
  readonly notAfter: Date;
}

/** What is wrong with a CSR, in words for the API's caller. */
export class CsrError extends Error {
  override readonly name = 'CsrError';
}

export class CertificateIssuer {
  readonly #caCertificate: x509.X509Certificate;
  readonly #caPem: string;
  readonly #signingKey: CryptoKey;
  readonly #algorithm: SigningAlgorithm;

  private constructor(caCertificate: x509.X509Certificate, caPem: string, signingKey: CryptoKey, algorithm: SigningAlgorithm) {
    this.#caCertificate = caCertificate;
    this.#caPem = caPem;
    this.#signingKey = signingKey;
    this.#algorithm = algorithm;
  }

  /**
   * The issuing CA from PEM text: a CA certificate and its private key (ECDSA P-256/P-384 or RSA).
   * @throws Error saying which part does not load or does not match.
   */
  static async load(certPem: string, keyPem: string): Promise<CertificateIssuer> {
    const node = new X509Certificate(certPem);
    if (!node.ca) throw new Error('the issuing certificate is not a CA (basicConstraints CA:TRUE)');
    const keyObject = createPrivateKey(keyPem);
    if (!node.checkPrivateKey(keyObject)) throw new Error('the issuing key does not belong to the issuing certificate');
    const details = keyObject.asymmetricKeyDetails ?? {};
    const ec = keyObject.asymmetricKeyType === 'ec';
    const namedCurve = details.namedCurve === 'secp384r1' ? 'P-384' : 'P-256';
    const algorithm: SigningAlgorithm = ec ? { name: 'ECDSA', hash: 'SHA-256' } : { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256' };
    const importAs = ec ? { name: 'ECDSA', namedCurve } : { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256' };
    const pkcs8 = keyObject.export({ type: 'pkcs8', format: 'der' });
    const signingKey = await crypto.subtle.importKey('pkcs8', pkcs8, importAs, false, ['sign']);
    return new CertificateIssuer(new x509.X509Certificate(node.raw), node.toString(), signingKey, algorithm);
  }

  /** The issuing CA's certificate, as gateways trust it. */
  get caCertificatePem(): string {
    return this.#caPem;
  }

  /**
   * Signs a certificate for `role` of `tenantId` with the CSR's public key, valid from now for
   * `ttlSeconds`. The CSR's own subject and extensions are ignored: the control plane names.
   * @throws CsrError when the CSR does not parse or is not signed by its own key.
   */
  async issue(
    csrPem: string,
    tenantId: string,
    role: string,
    ttlSeconds: number,
    now: Date = new Date(),
  ): Promise<IssuedClientCertificate> {
    let csr: x509.Pkcs10CertificateRequest;
    try {
      csr = new x509.Pkcs10CertificateRequest(csrPem);
    } catch {
      throw new CsrError('"csr" is not a PEM certificate signing request (PKCS #10)');
    }
    if (!(await csr.verify(crypto))) throw new CsrError('"csr" is not signed by the key it carries');
    // Whole seconds, as a certificate holds them.
    const notBefore = new Date(Math.floor(now.getTime() / 1000) * 1000);
    const notAfter = new Date(notBefore.getTime() + ttlSeconds * 1000);
    const serial = randomBytes(16);
    // A positive INTEGER whose first byte is not zero: DER drops a leading zero byte, and the
    // serial the certificate carries would then differ from the one this answers (126 random bits).
    serial[0] = 0x40 | ((serial[0] as number) & 0x3f);
    const publicKey = await csr.publicKey.export(crypto);
    const certificate = await x509.X509CertificateGenerator.create(
      {
        serialNumber: serial.toString('hex'),
        subject: [{ CN: [role] }, { O: [tenantId] }],
        issuer: this.#caCertificate.subjectName,
        notBefore,
        notAfter,
        publicKey,
        signingKey: this.#signingKey,
        signingAlgorithm: this.#algorithm,
        extensions: [
          new x509.BasicConstraintsExtension(false, undefined, true),
          new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
          new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.clientAuth]),
          new x509.SubjectAlternativeNameExtension([{ type: 'url', value: tenantCertificateUri(tenantId) }]),
          await x509.AuthorityKeyIdentifierExtension.create(this.#caCertificate, false, crypto),
        ],
      },
      crypto,
    );
    return { certificate: certificate.toString('pem'), serialNumber: serial.toString('hex').toUpperCase(), notBefore, notAfter };
  }
}
