// A PostgreSQL cluster the control plane provisions tenants on, and the admin connection to it:
// TLS with hostname checking against the cluster's CA (verify-full), the admin credential from
// the secrets directory, bounded connect and statement times. Every failure becomes one of three
// API errors (unreachable, credential refused, statement refused) saying which cluster and why.
import { checkServerIdentity, type PeerCertificate } from 'node:tls';
import { isIP } from 'node:net';
import pg from 'pg';
import { BackendAuthFailedError, BackendRefusedError, BackendUnreachableError, withDetails } from '../errors.ts';
import { readCredential } from './credentials.ts';

/** A cluster as registered (POST /v1/clusters). */
export interface Cluster {
  id: string;
  host: string;
  port: number;
  /** The name its certificate must carry; default `host`. */
  serverName?: string;
  /** PEM CA that its server certificate chains to; gateways use it too. */
  caCertificate: string;
  adminUser: string;
  /** Name of the credential files under CONTROL_PLANE_SECRETS_DIR. */
  adminCredential: string;
  /** The gateways' client certificate name (GATEWAY_SECRETS_DIR) for tenants on this cluster. */
  clientCertificate?: string;
  /** Its data directory on this machine, which the local compute driver starts and stops. */
  dataDirectory?: string;
}

/** What a connection as the admin found. */
export interface ClusterCheck {
  serverVersion: string;
  /** max_connections minus reserved slots minus client backends now. */
  freeConnections: number;
  checkedAt: string;
}

const CONNECT_TIMEOUT_MS = 5000;
const STATEMENT_TIMEOUT_MS = 30_000;
/** SQLSTATE class 28: invalid authorization specification. */
const AUTH_CLASS = '28';
/** SQLSTATEs worth another attempt: the server starting, full, or a serialization conflict. */
const TRANSIENT_SQLSTATES = new Set(['57P03', '53300', '40001', '40P01']);

/**
 * Runs `work` on a connection to `database` as the cluster's admin, closed afterwards.
 * @throws BackendUnreachableError, BackendAuthFailedError, BackendRefusedError
 */
export async function withClusterAdmin<T>(
  cluster: Cluster,
  secretsDir: string,
  database: string,
  work: (client: pg.Client) => Promise<T>,
): Promise<T> {
  const credential = await readCredential(secretsDir, cluster.adminCredential);
  if (typeof credential === 'string') throw new BackendAuthFailedError(cluster.id, credential);
  const serverName = cluster.serverName ?? cluster.host;
  const client = new pg.Client({
    host: cluster.host,
    port: cluster.port,
    user: cluster.adminUser,
    database,
    ...(credential.kind === 'password' ? { password: credential.password } : {}),
    ssl: {
      ca: cluster.caCertificate,
      ...(credential.kind === 'certificate' ? { cert: credential.cert, key: credential.key } : {}),
      // SNI only for a name (RFC 6066); the certificate is checked against serverName either way.
      ...(isIP(serverName) === 0 ? { servername: serverName } : {}),
      checkServerIdentity: (_host: string, certificate: PeerCertificate) => checkServerIdentity(serverName, certificate),
    },
    connectionTimeoutMillis: CONNECT_TIMEOUT_MS,
    statement_timeout: STATEMENT_TIMEOUT_MS,
    application_name: 'tenantgate-control-plane',
  });
  // A connection that breaks while idle reports here; the query in progress fails on its own.
  client.on('error', () => {});
  try {
    await client.connect();
  } catch (error) {
    await client.end().catch(() => {});
    throw clusterError(cluster.id, error);
  }
  try {
    return await work(client);
  } catch (error) {
    throw clusterError(cluster.id, error);
  } finally {
    await client.end().catch(() => {});
  }
}

/** Version and free connection slots, as the admin sees them. */
export async function checkCluster(client: pg.Client): Promise<ClusterCheck> {
  const { rows } = await client.query<{ version: string; free: number }>(
    `SELECT current_setting('server_version') AS version,
            current_setting('max_connections')::int - current_setting('superuser_reserved_connections')::int
              - (SELECT count(*)::int FROM pg_stat_activity WHERE backend_type = 'client backend') AS free`,
  );
  return { serverVersion: rows[0].version, freeConnections: Number(rows[0].free), checkedAt: new Date().toISOString() };
}

/** Whether the admin may create roles and databases (a superuser may). */
export async function adminPrivilegeProblem(client: pg.Client): Promise<string | undefined> {
  const { rows } = await client.query<{ rolsuper: boolean; rolcreaterole: boolean; rolcreatedb: boolean }>(
    'SELECT rolsuper, rolcreaterole, rolcreatedb FROM pg_roles WHERE rolname = current_user',
  );
  const role = rows[0];
  if (role.rolsuper || (role.rolcreaterole && role.rolcreatedb)) return undefined;
  return 'the admin user needs CREATEROLE and CREATEDB (or to be a superuser) to provision tenants';
}

/** An API error already, a PostgreSQL error (SQLSTATE), or a connection failure. */
function clusterError(id: string, error: unknown): Error {
  const code = (error as { code?: unknown }).code;
  if (typeof code === 'string' && code.startsWith('TG_ERR_')) return error as Error;
  const message = (error as Error).message ?? String(error);
  if (typeof code === 'string' && /^[0-9A-Z]{5}$/.test(code)) {
    const details = { sqlstate: code, transient: TRANSIENT_SQLSTATES.has(code) };
    if (code.startsWith(AUTH_CLASS)) return withDetails(new BackendAuthFailedError(id, message), details);
    return withDetails(new BackendRefusedError(id, message), details);
  }
  if (isConnectionFailure(error)) return withDetails(new BackendUnreachableError(id, message), { transient: true });
  // Not the cluster's doing (a lost lease, a fault of ours): reported as it is, not retried as an outage.
  return error as Error;
}

/** Node's network and TLS error codes, and node-postgres's words for a connection that ended. */
const CONNECTION_CODES =
  /^(E[A-Z]+|ERR_TLS_.*|ERR_SSL_.*|CERT_.*|UNABLE_TO_.*|DEPTH_ZERO_SELF_SIGNED_CERT|SELF_SIGNED_CERT_IN_CHAIN|ERR_STREAM_.*)$/;
const CONNECTION_MESSAGES = /Connection terminated|timeout expired|does not support SSL|socket hang up/i;

function isConnectionFailure(error: unknown): boolean {
  const code = (error as { code?: unknown }).code;
  if (typeof code === 'string' && CONNECTION_CODES.test(code)) return true;
  return CONNECTION_MESSAGES.test((error as Error).message ?? '');
}

/** Whether another attempt may succeed (the cluster was down, busy or starting). */
export function isTransient(error: unknown): boolean {
  return (error as { details?: { transient?: unknown } }).details?.transient === true;
}

/** A refusal of ours, not the server's: a name on the cluster that belongs to someone else. */
export function refused(id: string, reason: string): Error {
  return withDetails(new BackendRefusedError(id, reason), { transient: false });
}
