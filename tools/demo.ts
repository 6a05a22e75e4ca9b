// `npm run demo`: the local stack of `npm start`, plus two PostgreSQL backends with TLS (made with
// initdb in a temporary directory) and tenants provisioned on them through the REST API:
// `acme`, whose backend lets the gateway in by its client certificate, `globex`, whose backend
// checks SCRAM, answered with the key recovered from the client's own proof, and `initech`, a
// database of its own on acme's backend whose clients log in with a short-lived certificate from
// the control plane (`npm run tenantgate -- connect initech app`) instead of a password.
import { readFile } from 'node:fs/promises';
import { startPostgres, type PostgresServer } from '@tenantgate/testing';
import { DEV_DOMAIN, GATEWAY_CLIENT_CN } from './dev-certs.ts';
import { controlPlaneRequest, startDevStackOrExit, stopOnSignal, type DevStack } from './dev-stack.ts';

const PASSWORD = 'demo-password';

const stack = await startDevStackOrExit();
const backends: PostgresServer[] = [];
stopOnSignal(async () => {
  await stack.stop();
  await Promise.all(backends.map((b) => b.stop()));
});
try {
  const tls = {
    serverCert: await readFile(stack.certs.backendCertFile, 'utf8'),
    serverKey: await readFile(stack.certs.backendKeyFile, 'utf8'),
    clientCa: await readFile(stack.certs.caFile, 'utf8'),
  };
  const [certBackend, scramBackend] = await Promise.all([
    startPostgres({ ...tls, hba: [`hostssl all ${GATEWAY_CLIENT_CN} 127.0.0.1/32 cert`], roles: [{ name: GATEWAY_CLIENT_CN }] }),
    startPostgres({
      ...tls,
      hba: ['hostssl all all 127.0.0.1/32 scram-sha-256 clientcert=verify-ca'],
      roles: [{ name: 'app', password: PASSWORD }],
    }),
  ]);
  backends.push(certBackend, scramBackend);
  await certBackend.sql(`create table hello as select 'acme''s own database' as greeting; grant select on hello to ${GATEWAY_CLIENT_CN}`);
  await scramBackend.sql("create table hello as select 'globex''s own database' as greeting; grant select on hello to app");
  await certBackend.sql(`create database initech owner ${GATEWAY_CLIENT_CN}`);
  await certBackend.sql("create table hello as select 'initech''s own database' as greeting", [], { database: 'initech' });
  await certBackend.sql(`alter table hello owner to ${GATEWAY_CLIENT_CN}`, [], { database: 'initech' });
  const [{ rolpassword }] = await scramBackend.sql<{ rolpassword: string }>("select rolpassword from pg_authid where rolname = 'app'");
  await provision(stack, {
    id: 'acme',
    backend: { host: '127.0.0.1', port: certBackend.port, database: 'postgres' },
    roles: [{ name: 'app', password: PASSWORD, backendUser: GATEWAY_CLIENT_CN }],
  });
  await provision(stack, {
    id: 'initech',
    authMode: 'certificate',
    backend: { host: '127.0.0.1', port: certBackend.port, database: 'initech' },
    // The certificate is the login; the role is listed for its backend user only.
    roles: [{ name: 'app', password: PASSWORD, backendUser: GATEWAY_CLIENT_CN }],
  });
  await provision(stack, {
    id: 'globex',
    backend: { host: '127.0.0.1', port: scramBackend.port, database: 'postgres' },
    // The backend's own secret, so the gateway can log in with the key from the client's proof.
    roles: [{ name: 'app', scramSecret: rolpassword }],
  });
} catch (error) {
  await stack.stop();
  await Promise.all(backends.map((b) => b.stop()));
  throw error;
}

const ca = stack.rel(stack.certs.caFile);
const psql = (tenant: string) =>
  `PGPASSWORD=${PASSWORD} psql "host=${tenant}.${DEV_DOMAIN} hostaddr=${stack.gatewayHost} port=${stack.gatewayPort} user=app dbname=postgres sslmode=verify-full sslrootcert=${ca}" -c 'select * from hello'`;
console.log(`
tenantgate demo is running (Ctrl-C stops it)
  control plane  ${stack.controlPlaneUrl}   API docs: ${stack.controlPlaneUrl}/docs
  gateway        ${stack.gatewayHost}:${stack.gatewayPort}   tenants: acme, globex (password ${PASSWORD} for role app), initech (a client certificate)

  ${psql('acme')}
  ${psql('globex')}
  npm run tenantgate -- connect initech app

  curl -sS ${stack.controlPlaneUrl}/v1/tenants -H "authorization: Bearer ${stack.adminToken}"
`);

/** Creates the tenant, replacing one left by an earlier run (its backend ports are gone). */
async function provision(stack: DevStack, tenant: { id: string } & Record<string, unknown>): Promise<void> {
  let created = await controlPlaneRequest(stack, 'POST', '/v1/tenants', tenant);
  if (created.status === 409) {
    await controlPlaneRequest(stack, 'DELETE', `/v1/tenants/${tenant.id}`);
    created = await controlPlaneRequest(stack, 'POST', '/v1/tenants', tenant);
  }
  if (created.status !== 201) throw new Error(`creating tenant ${tenant.id} failed: ${created.status} ${created.text}`);
}
