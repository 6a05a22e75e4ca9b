// A TLS policy per leg (docs/architecture.md, steps 3 and 10): GATEWAY_TLS_MIN_VERSION and
// GATEWAY_TLS_CIPHERS for clients, a tenant's backend.tls.minVersion (else the gateway's
// default) for its backend. A backend below its tenant's policy is refused with 08001.
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { createTestPki, runPsql, type TestPki } from '@tenantgate/testing';
import {
  connectError,
  connectPg,
  PASSWORD,
  pgClient,
  psqlSettings,
  scratchDir,
  startCertBackend,
  startGateway,
  tenantHost,
  type TenantEntry,
} from './harness.ts';

/** Two tenants on a backend that speaks TLS 1.2 at most: the first with no TLS floor of its own, the second with `minVersion`. */
async function tls12Tenants(
  t: TestContext,
  pki: TestPki,
  ids: [string, string],
  minVersion: 'TLSv1.2' | 'TLSv1.3',
): Promise<TenantEntry[]> {
  const backend = await startCertBackend(t, pki, { ssl_max_protocol_version: 'TLSv1.2' });
  const on = { host: '127.0.0.1', port: backend.port };
  const roles = [{ name: 'app', password: PASSWORD }];
  return [
    { id: ids[0], backend: on, roles },
    { id: ids[1], backend: { ...on, tls: { minVersion } }, roles },
  ];
}

test("a backend that offers only TLS 1.2 is refused when its tenant's policy is TLS 1.3, and accepted otherwise", async (t) => {
  const pki = await createTestPki();
  const tenants = await tls12Tenants(t, pki, ['lax', 'strict'], 'TLSv1.3');
  const gateway = await startGateway(t, { pki, dir: scratchDir(t, 'gw-tls-policy'), tenants });
  const client = await connectPg(t, gateway, pki, { servername: tenantHost('lax') });
  assert.deepEqual((await client.query('select version from pg_stat_ssl where pid = pg_backend_pid()')).rows, [{ version: 'TLSv1.2' }]);
  const refused = await connectError(pgClient(gateway, pki, { servername: tenantHost('strict') }));
  assert.equal(refused.code, '08001');
  assert.equal(
    refused.message,
    "TLS with the tenant's database failed: it offers no TLS version from TLSv1.3 up, which this database's TLS policy requires",
  );
});

test('GATEWAY_BACKEND_TLS_MIN_VERSION is the floor of tenants that set none', async (t) => {
  const pki = await createTestPki();
  const tenants = await tls12Tenants(t, pki, ['inherits', 'allows'], 'TLSv1.2');
  const gateway = await startGateway(t, {
    pki,
    dir: scratchDir(t, 'gw-tls-policy-default'),
    settings: { backendTlsMinVersion: 'TLSv1.3' },
    tenants,
  });
  assert.equal((await connectError(pgClient(gateway, pki, { servername: tenantHost('inherits') }))).code, '08001');
  await connectPg(t, gateway, pki, { servername: tenantHost('allows') });
});

test('GATEWAY_TLS_MIN_VERSION=TLSv1.3 refuses a client that offers at most TLS 1.2; GATEWAY_TLS_CIPHERS limits the ciphers', async (t) => {
  const pki = await createTestPki();
  const dir = scratchDir(t, 'gw-tls-policy-edge');
  const backend = await startCertBackend(t, pki);
  const tenants = [{ id: 'acme', backend: { host: '127.0.0.1', port: backend.port }, roles: [{ name: 'app', password: PASSWORD }] }];
  const caFile = join(dir, 'ca.pem');
  await writeFile(caFile, pki.ca.certPem);
  const strict = await startGateway(t, { pki, dir, tenants, settings: { tlsPolicy: { minVersion: 'TLSv1.3', ciphers: undefined } } });
  const old = await runPsql(psqlSettings(strict, caFile, 'acme', { ssl_max_protocol_version: 'TLSv1.2' }), {
    password: PASSWORD,
    home: dir,
  });
  assert.equal(old.code, 2);
  assert.match(old.stderr, /protocol version|unsupported protocol/i);
  const current = await runPsql(psqlSettings(strict, caFile, 'acme'), { password: PASSWORD, home: dir, sql: 'select 1' });
  assert.equal(current.code, 0, current.stderr);

  // TLS 1.2 with one cipher suite only: a client that offers it gets it.
  const oneCipher = await startGateway(t, {
    pki,
    dir,
    tenants,
    settings: { tlsPolicy: { minVersion: 'TLSv1.2', ciphers: 'ECDHE-ECDSA-AES256-GCM-SHA384' } },
  });
  const cipher = await runPsql(psqlSettings(oneCipher, caFile, 'acme', { ssl_max_protocol_version: 'TLSv1.2' }), {
    password: PASSWORD,
    home: dir,
    sql: 'select 1',
  });
  assert.equal(cipher.code, 0, cipher.stderr);
});
