// `npm start`: the local stack (control plane with an embedded PGlite store, the gateway with an
// in-process cache) and how to create a tenant with curl and connect with psql.
import { join } from 'node:path';
import { DEV_DOMAIN, GATEWAY_CLIENT_CN } from './dev-certs.ts';
import { startDevStackOrExit, stopOnSignal } from './dev-stack.ts';

const stack = await startDevStackOrExit();
stopOnSignal(stack.stop);
const ca = stack.rel(stack.certs.caFile);
const tenant = JSON.stringify({
  id: 'acme',
  backend: { host: '127.0.0.1', port: 5432, database: 'postgres' },
  roles: [{ name: 'app', password: 'app-password', backendUser: GATEWAY_CLIENT_CN }],
});
console.log(`
tenantgate is running (Ctrl-C stops it)
  control plane  ${stack.controlPlaneUrl}   API docs: ${stack.controlPlaneUrl}/docs
  gateway        ${stack.gatewayHost}:${stack.gatewayPort} for <tenant>.${DEV_DOMAIN}${stack.adminUrl === undefined ? '' : `   metrics: ${stack.adminUrl}/metrics`}
  logs           ${stack.rel(join(stack.dataDir, 'logs'))}/   certificates: ${stack.rel(stack.certs.dir)}/

Create a tenant whose backend is a PostgreSQL with TLS on 127.0.0.1:5432 that trusts ${ca}
for client certificates and lets the gateway in by its certificate (CN "${GATEWAY_CLIENT_CN}",
pg_hba "hostssl all ${GATEWAY_CLIENT_CN} 127.0.0.1/32 cert"):

  export TG_TOKEN=${stack.adminToken}
  curl -sS ${stack.controlPlaneUrl}/v1/tenants -H "authorization: Bearer $TG_TOKEN" \\
    -H 'content-type: application/json' -d '${tenant}'

Connect through the gateway (the tenant comes from the host name):

  psql "host=acme.${DEV_DOMAIN} hostaddr=${stack.gatewayHost} port=${stack.gatewayPort} user=app dbname=postgres sslmode=verify-full sslrootcert=${ca}"

No such PostgreSQL at hand? \`npm run demo\` starts two and provisions a tenant on each.
`);
