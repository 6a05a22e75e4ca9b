// Development certificates for `npm start` and `npm run demo`, made on first run under the
// git-ignored data directory and reused while they are valid: one local CA, the gateway's
// wildcard certificate for `*.db.localhost`, the gateway's client certificate for backends, and a
// server certificate for local backends (`localhost`, 127.0.0.1, and `postgres`, the backend of
// the local fleet in deploy/compose.yaml), the control plane's issuing CA for client
// certificates (an intermediate of the local CA), and, in the control plane's secrets directory,
// the client certificate it logs in to the demo's clusters with.
import { X509Certificate } from 'node:crypto';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { createCertificateAuthority, type IssuedCertificate } from '@tenantgate/testing';

export const DEV_DOMAIN = 'db.localhost';
/** The CN of the gateway's client certificate: the role a `cert` backend lets it in as. */
export const GATEWAY_CLIENT_CN = 'tenantgate';
/** The admin the control plane provisions on local clusters as (their bootstrap superuser). */
export const CLUSTER_ADMIN_USER = 'postgres';
/** The name of its credential files in the secrets directory (a cluster's adminCredential). */
export const CLUSTER_ADMIN_CREDENTIAL = 'cluster-admin';

export interface DevCertificates {
  readonly dir: string;
  /** Trust this one (sslrootcert) to verify the gateway and the demo backends. */
  readonly caFile: string;
  readonly edgeCertFile: string;
  readonly edgeKeyFile: string;
  readonly gatewayClientCertFile: string;
  readonly gatewayClientKeyFile: string;
  readonly backendCertFile: string;
  readonly backendKeyFile: string;
  /** CONTROL_PLANE_CA_CERT and _KEY: signs short-lived client certificates of tenants' roles. */
  readonly issuingCaCertFile: string;
  readonly issuingCaKeyFile: string;
  /** CONTROL_PLANE_SECRETS_DIR: `cluster-admin.crt` and `.key`, a client certificate for CLUSTER_ADMIN_USER. */
  readonly secretsDir: string;
  readonly clusterAdminCertFile: string;
  readonly clusterAdminKeyFile: string;
}

/** The host names of the development backends' server certificate. */
const BACKEND_NAMES = ['localhost', 'postgres'];
const YEAR_MS = 365 * 24 * 3_600_000;
/** Certificates closer than this to their end are made again. */
const RENEW_BEFORE_MS = 7 * 24 * 3_600_000;

export async function ensureDevCertificates(dataDir: string): Promise<DevCertificates> {
  const dir = join(dataDir, 'certs');
  const secretsDir = join(dataDir, 'secrets');
  const files: DevCertificates = {
    dir,
    caFile: join(dir, 'ca.crt'),
    edgeCertFile: join(dir, 'edge.crt'),
    edgeKeyFile: join(dir, 'edge.key'),
    gatewayClientCertFile: join(dir, 'gateway-client.crt'),
    gatewayClientKeyFile: join(dir, 'gateway-client.key'),
    backendCertFile: join(dir, 'backend.crt'),
    backendKeyFile: join(dir, 'backend.key'),
    issuingCaCertFile: join(dir, 'issuing-ca.crt'),
    issuingCaKeyFile: join(dir, 'issuing-ca.key'),
    secretsDir,
    clusterAdminCertFile: join(secretsDir, `${CLUSTER_ADMIN_CREDENTIAL}.crt`),
    clusterAdminKeyFile: join(secretsDir, `${CLUSTER_ADMIN_CREDENTIAL}.key`),
  };
  if (await stillValid(files)) return files;
  await mkdir(dir, { recursive: true, mode: 0o700 });
  await mkdir(secretsDir, { recursive: true, mode: 0o700 });
  const notAfter = new Date(Date.now() + YEAR_MS);
  const ca = await createCertificateAuthority({ commonName: 'tenantgate development CA', notAfter });
  const [edge, client, backend, issuing, clusterAdmin] = await Promise.all([
    ca.issueServerCertificate({ dnsNames: [`*.${DEV_DOMAIN}`], notAfter }),
    ca.issueClientCertificate({ commonName: GATEWAY_CLIENT_CN, notAfter }),
    ca.issueServerCertificate({ dnsNames: BACKEND_NAMES, ipAddresses: ['127.0.0.1'], notAfter }),
    ca.issueIntermediate({ commonName: 'tenantgate development issuing CA', notAfter }),
    ca.issueClientCertificate({ commonName: CLUSTER_ADMIN_USER, notAfter }),
  ]);
  await writeFile(files.caFile, ca.certPem);
  await writePair(files.edgeCertFile, files.edgeKeyFile, edge);
  await writePair(files.gatewayClientCertFile, files.gatewayClientKeyFile, client);
  await writePair(files.backendCertFile, files.backendKeyFile, backend);
  await writePair(files.issuingCaCertFile, files.issuingCaKeyFile, issuing);
  await writePair(files.clusterAdminCertFile, files.clusterAdminKeyFile, clusterAdmin);
  return files;
}

async function writePair(certFile: string, keyFile: string, issued: IssuedCertificate): Promise<void> {
  await writeFile(certFile, issued.chainPem);
  // PostgreSQL refuses a key file that others can read.
  await writeFile(keyFile, issued.keyPem, { mode: 0o600 });
}

async function stillValid(files: DevCertificates): Promise<boolean> {
  try {
    const certificates = [
      files.caFile,
      files.edgeCertFile,
      files.gatewayClientCertFile,
      files.backendCertFile,
      files.issuingCaCertFile,
      files.clusterAdminCertFile,
    ];
    for (const file of certificates) {
      const cert = new X509Certificate(await readFile(file));
      if (Date.parse(cert.validTo) - Date.now() < RENEW_BEFORE_MS) return false;
    }
    // Made before the backend certificate named every host it names now.
    const backend = new X509Certificate(await readFile(files.backendCertFile));
    if (!BACKEND_NAMES.every((name) => backend.checkHost(name) !== undefined)) return false;
    await Promise.all(
      [files.edgeKeyFile, files.gatewayClientKeyFile, files.backendKeyFile, files.issuingCaKeyFile, files.clusterAdminKeyFile].map((file) =>
        readFile(file),
      ),
    );
    return true;
  } catch {
    return false;
  }
}
