// `npm run demo`: the local stack of `npm start`, plus two PostgreSQL servers with TLS (made with
// initdb in a temporary directory) registered with the control plane as clusters, `east` and
// `west`, and tenants made through the REST API: `acme` on east and `globex` on west, each
// provisioned by the control plane (its own database and roles, the password's SCRAM secret set
// on the cluster and at the edge in one call), and `initech`, a database on east whose clients
// log in with a short-lived certificate from the control plane (`npm run tenantgate -- connect
// initech app`) instead of a password, reached by address with the gateway's client certificate.
// globex sleeps once it has had no session for IDLE_SECONDS: the control plane stops west with
// pg_ctl, and the next client that logs in wakes it (the gateways' sessions are counted in Redis:
// the demo starts one of its own unless REDIS_URL names one).
import { readFile } from 'node:fs/promises';
import { startPostgres, startRedis, type PostgresServer, type RedisServer } from '@tenantgate/testing';
import { CLUSTER_ADMIN_CREDENTIAL, CLUSTER_ADMIN_USER, DEV_DOMAIN, GATEWAY_CLIENT_CN } from './dev-certs.ts';
import { controlPlaneRequest, startDevStackOrExit, stopOnSignal, type DevStack } from './dev-stack.ts';

const PASSWORD = 'demo-password';
const TENANTS = ['acme', 'globex', 'initech'];
const CLUSTERS = ['east', 'west'];
const IDLE_SECONDS = 15;

const redis: RedisServer | undefined = process.env.REDIS_URL === undefined ? await startRedis() : undefined;
if (redis !== undefined) process.env.REDIS_URL = redis.url;
const stack = await startDevStackOrExit();
const backends: PostgresServer[] = [];
const stopAll = async () => {
  await stack.stop();
  await Promise.all([...backends.map((b) => b.stop()), redis?.stop()]);
};
stopOnSignal(stopAll);
try {
  const tls = {
    serverCert: await readFile(stack.certs.backendCertFile, 'utf8'),
    serverKey: await readFile(stack.certs.backendKeyFile, 'utf8'),
    clientCa: await readFile(stack.certs.caFile, 'utf8'),
  };
  const hba = [
    // The control plane's admin, by its client certificate (.data/secrets/cluster-admin.*).
    `hostssl all ${CLUSTER_ADMIN_USER} 127.0.0.1/32 cert`,
    // initech's sessions: the gateway by its client certificate.
    `hostssl all ${GATEWAY_CLIENT_CN} 127.0.0.1/32 cert`,
    // Provisioned roles: SCRAM, which the gateway answers with the key from the client's proof.
    'hostssl all all 127.0.0.1/32 scram-sha-256 clientcert=verify-ca',
  ];
  const [east, west] = await Promise.all([
    startPostgres({ ...tls, hba, roles: [{ name: GATEWAY_CLIENT_CN }] }),
    startPostgres({ ...tls, hba }),
  ]);
  backends.push(east, west);
  await forgetEarlierRun(stack);
  await request(stack, 'POST', '/v1/clusters', clusterBody('east', east, tls.clientCa), 201);
  await request(stack, 'POST', '/v1/clusters', clusterBody('west', west, tls.clientCa), 201);
  for (const [id, cluster, server, idle] of [
    ['acme', 'east', east, {}],
    ['globex', 'west', west, { idleSuspendSeconds: IDLE_SECONDS }],
  ] as const) {
    const tenant = { id, backend: { cluster }, roles: [{ name: 'app', password: PASSWORD }], ...idle };
    await request(stack, 'POST', '/v1/tenants', tenant, 201);
    // The tenant's owner role owns the table; its roles (acme_app) are members.
    await server.sql(`create table hello as select '${id}''s own database' as greeting; alter table hello owner to ${id}`, [], {
      database: id,
    });
  }
  await east.sql(`create database initech owner ${GATEWAY_CLIENT_CN}`);
  await east.sql("create table hello as select 'initech''s own database' as greeting", [], { database: 'initech' });
  await east.sql(`alter table hello owner to ${GATEWAY_CLIENT_CN}`, [], { database: 'initech' });
  const initech = {
    id: 'initech',
    authMode: 'certificate',
    backend: { host: '127.0.0.1', port: east.port, database: 'initech' },
    // The certificate is the login; the role is listed for its backend user only.
    roles: [{ name: 'app', password: PASSWORD, backendUser: GATEWAY_CLIENT_CN }],
  };
  await request(stack, 'POST', '/v1/tenants', initech, 201);
} catch (error) {
  await stopAll();
  throw error;
}

const ca = stack.rel(stack.certs.caFile);
const psql = (tenant: string) =>
  `PGPASSWORD=${PASSWORD} psql "host=${tenant}.${DEV_DOMAIN} hostaddr=${stack.gatewayHost} port=${stack.gatewayPort} user=app dbname=postgres sslmode=verify-full sslrootcert=${ca}" -c 'select * from hello'`;
console.log(`
tenantgate demo is running (Ctrl-C stops it)
  control plane  ${stack.controlPlaneUrl}   API docs: ${stack.controlPlaneUrl}/docs
  gateway        ${stack.gatewayHost}:${stack.gatewayPort}   tenants: acme, globex (password ${PASSWORD} for role app), initech (a client certificate)
  clusters       east: acme, initech   west: globex, which sleeps after ${IDLE_SECONDS} s without a session and wakes on the next

  ${psql('acme')}
  ${psql('globex')}
  npm run tenantgate -- connect initech app

  curl -sS ${stack.controlPlaneUrl}/v1/tenants -H "authorization: Bearer ${stack.adminToken}"
  curl -sS ${stack.controlPlaneUrl}/v1/clusters -H "authorization: Bearer ${stack.adminToken}"
`);

function clusterBody(id: string, server: PostgresServer, caCertificate: string): Record<string, unknown> {
  return {
    id,
    host: '127.0.0.1',
    port: server.port,
    serverName: 'localhost',
    caCertificate,
    adminUser: CLUSTER_ADMIN_USER,
    adminCredential: CLUSTER_ADMIN_CREDENTIAL,
    // The local compute driver starts and stops it there.
    dataDirectory: server.dataDir,
  };
}

/** The tenants and clusters of an earlier run name servers that are gone: forget them. */
async function forgetEarlierRun(stack: DevStack): Promise<void> {
  for (const id of TENANTS) await request(stack, 'DELETE', `/v1/tenants/${id}`, undefined, 204, 404);
  for (const id of CLUSTERS) await request(stack, 'DELETE', `/v1/clusters/${id}`, undefined, 204, 404);
}

async function request(stack: DevStack, method: string, path: string, body: unknown, ...expected: number[]): Promise<void> {
  const { status, text } = await controlPlaneRequest(stack, method, path, body);
  if (!expected.includes(status)) throw new Error(`${method} ${path} failed: ${status} ${text}`);
}
