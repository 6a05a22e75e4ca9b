// Certificate authentication at the edge (docs/architecture.md, step 8): for a tenant in
// `certificate` or `certificate+scram` mode, the client's TLS certificate must be issued by a CA
// certificate of the tenant's clientCaCertificate bundle (each one a trust anchor: a bundle that
// holds an intermediate trusts what it issues), be valid now, and name the role it logs in as:
// its subject CN or a subjectAltName, as PostgreSQL's `cert` method with clientname=CN. The listener asks every client for a certificate without requiring one, so
// tenants that do not use them see no difference. Each failure is 28000 saying which it was.
import { X509Certificate } from 'node:crypto';
import type { Socket } from 'node:net';
import { TLSSocket } from 'node:tls';
import { tenantCertificateUri, type Tenant } from '@tenantgate/tenancy';
import { SqlState } from '@tenantgate/wire';
import { Refusal } from '../errors.ts';

const PEM_CERTIFICATE = /-----BEGIN CERTIFICATE-----[^-]+-----END CERTIFICATE-----/g;

/** A CA the tenant trusts; `bound`: the control plane's issuing CA, whose certificates must name the tenant. */
interface TrustAnchor {
  readonly certificate: X509Certificate;
  readonly bound: boolean;
}

/** A tenant route is frozen and shared: its CA certificates are parsed once per route object. */
const parsedCas = new WeakMap<Tenant, readonly TrustAnchor[]>();

/**
 * Checks the client's certificate for `role` of `tenant`.
 * @throws Refusal 28000 when there is none, or it does not chain to the tenant's CA, is not
 *   valid now, or does not name the role.
 */
export function checkClientCertificate(socket: Socket, tenant: Tenant, role: string, now: Date = new Date()): void {
  const leaf = socket instanceof TLSSocket ? socket.getPeerX509Certificate() : undefined;
  if (leaf === undefined) {
    throw new Refusal(SqlState.InvalidAuthorization, 'connection requires a valid client certificate', {
      detail: 'No client certificate was sent.',
      hint: "Connect with sslcert and sslkey: a certificate of this database's client certificate authority that names your role.",
    });
  }
  const anchor = tenantCas(tenant).find(({ certificate: ca }) => ca.ca && leaf.checkIssued(ca) && leaf.verify(ca.publicKey));
  if (anchor === undefined) refuse(role, "The client certificate is not signed by this database's client certificate authority.");
  // One issuing CA serves every tenant: what it signs names the tenant it was issued for.
  if (anchor.bound && !altNames(leaf).includes(`URI:${tenantCertificateUri(tenant.id)}`)) {
    refuse(role, 'The client certificate was issued for another database.');
  }
  const revokedBefore = tenant.clientCertificates?.notBefore;
  if (revokedBefore !== undefined && leaf.validFromDate.getTime() < Date.parse(revokedBefore)) {
    refuse(role, "The client certificate was issued before this database's client certificates were revoked.");
  }
  const issuer = anchor.certificate;
  for (const certificate of [leaf, issuer]) {
    if (certificate.validToDate.getTime() < now.getTime()) {
      refuse(
        role,
        certificate === leaf ? 'The client certificate has expired.' : 'The certificate authority of the client certificate has expired.',
      );
    }
    if (certificate.validFromDate.getTime() > now.getTime()) refuse(role, 'The client certificate is not valid yet.');
  }
  if (!namesRole(leaf, role)) refuse(role, `The client certificate does not name the role "${role}" (its CN or a subjectAltName).`);
}

function refuse(role: string, detail: string): never {
  throw new Refusal(SqlState.InvalidAuthorization, `certificate authentication failed for user "${role}"`, { detail });
}

function tenantCas(tenant: Tenant): readonly TrustAnchor[] {
  let anchors = parsedCas.get(tenant);
  if (anchors === undefined) {
    anchors = [
      ...parsePem(tenant.clientCaCertificate).map((certificate) => ({ certificate, bound: false })),
      ...parsePem(tenant.clientCertificates?.issuerCaCertificate).map((certificate) => ({ certificate, bound: true })),
    ];
    parsedCas.set(tenant, anchors);
  }
  return anchors;
}

/** The record was validated (every block parses); a block that does not parse trusts nothing. */
function parsePem(pem: string | undefined): X509Certificate[] {
  return (pem?.match(PEM_CERTIFICATE) ?? []).flatMap((block) => {
    try {
      return [new X509Certificate(block)];
    } catch {
      return [];
    }
  });
}

function altNames(certificate: X509Certificate): string[] {
  return certificate.subjectAltName?.split(', ') ?? [];
}

/** The subject's CN, or a subjectAltName DNS name, email or URI, equal to the role name. */
function namesRole(certificate: X509Certificate, role: string): boolean {
  const commonNames = certificate.subject.split('\n').filter((part) => part.startsWith('CN='));
  if (commonNames.some((part) => part.slice(3) === role)) return true;
  return altNames(certificate).some((entry) => /^(DNS|email|URI):/.test(entry) && entry.slice(entry.indexOf(':') + 1) === role);
}
