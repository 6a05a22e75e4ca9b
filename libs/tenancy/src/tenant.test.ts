import { test } from 'node:test';
import assert from 'node:assert/strict';
import { materializeTenant, TenantValidationError, validateTenantInput, validateTenantsFile } from './tenant.ts';
import { CA_PEM, LEAF_PEM } from './testing/certificates.ts';

const secret = `SCRAM-SHA-256$4096:${Buffer.alloc(16, 1).toString('base64')}$${Buffer.alloc(32, 2).toString('base64')}:${Buffer.alloc(32, 3).toString('base64')}`;
const minimal = { id: 'acme', backend: { host: '10.0.3.17' } };

function issuesOf(fn: () => unknown): { path: string; message: string }[] {
  try {
    fn();
  } catch (error) {
    assert.ok(error instanceof TenantValidationError);
    return error.issues;
  }
  assert.fail('expected a TenantValidationError');
}

test('a minimal tenant gets the documented defaults', () => {
  assert.deepEqual(validateTenantInput(minimal), {
    id: 'acme',
    status: 'active',
    backend: { host: '10.0.3.17', port: 5432 },
    authMode: 'gateway',
    userRewrite: {},
    roles: [],
    allowedCidrs: ['0.0.0.0/0', '::/0'],
    limits: { maxConnections: 100, connectsPerSecond: 50 },
    replication: 'none',
  });
});

test('validation does not modify its input', () => {
  const input = structuredClone(minimal);
  validateTenantInput(input);
  assert.deepEqual(input, minimal);
});

test('a record with every field validates', () => {
  const full = {
    ...minimal,
    status: 'maintenance',
    backend: {
      host: '10.0.3.17',
      port: 6432,
      serverName: 'acme.internal.example.net',
      database: 'app',
      caCertificate: CA_PEM,
      clientCertificate: 'acme',
      tls: { minVersion: 'TLSv1.3' },
    },
    authMode: 'passthrough',
    userRewrite: { template: '{user}_{tenant}' },
    roles: [{ name: 'app', scramSecret: secret, backendUser: 'acme_app' }],
    allowedCidrs: ['10.0.0.0/8'],
    limits: { maxConnections: 5, connectsPerSecond: 1 },
    replication: 'physical',
  };
  assert.deepEqual(validateTenantInput(full), full);
});

test('each bad field is named with a message a person can act on', () => {
  const cases: [unknown, string, RegExp][] = [
    [{ ...minimal, id: 'Acme' }, '/id', /a-z, 0-9/],
    [{ ...minimal, id: 'a'.repeat(64) }, '/id', /63/],
    [{ id: 'acme' }, '/backend', /required/],
    [{ ...minimal, backend: { host: 'h', port: 70000 } }, '/backend/port', /<= 65535/],
    [{ ...minimal, status: 'gone' }, '/status', /active, suspended, maintenance/],
    [{ ...minimal, extra: 1 }, '/extra', /not a known field/],
    [{ ...minimal, backend: { host: 'h', clientCertificate: '../etc/passwd' } }, '/backend/clientCertificate', /file name/],
    [{ ...minimal, backend: { host: 'h', caCertificate: 'junk' } }, '/backend/caCertificate', /PEM/],
    [{ ...minimal, backend: { host: 'h', tls: { minVersion: 'TLSv1.1' } } }, '/backend/tls/minVersion', /TLSv1\.2, TLSv1\.3/],
    [{ ...minimal, replication: 'all' }, '/replication', /none, logical, physical/],
    [{ ...minimal, authMode: 'certificate' }, '/clientCaCertificate', /required with authMode "certificate"/],
    [{ ...minimal, clientCaCertificate: 'junk' }, '/clientCaCertificate', /PEM/],
    [
      { ...minimal, roles: [{ name: 'app', password: 'x', authMode: 'certificate' }] },
      '/roles/0/authMode',
      /needs the tenant's clientCaCertificate/,
    ],
    [
      { ...minimal, roles: [{ name: 'app', password: 'x', authMode: 'passthrough' }] },
      '/roles/0/authMode',
      /gateway, certificate, certificate\+scram/,
    ],
    [{ ...minimal, roles: [{ name: 'app', scramSecret: 'md5abc' }] }, '/roles/0/scramSecret', /pg_authid/],
    [{ ...minimal, roles: [{ name: 'app' }] }, '/roles/0', /exactly one/],
    [{ ...minimal, roles: [{ name: 'app', password: 'x', scramSecret: secret }] }, '/roles/0', /exactly one/],
    [
      {
        ...minimal,
        roles: [
          { name: 'a', password: 'x' },
          { name: 'a', password: 'y' },
        ],
      },
      '/roles/1/name',
      /duplicate/,
    ],
    [{ ...minimal, allowedCidrs: ['10.0.0.0/33'] }, '/allowedCidrs/0', /not a CIDR/],
    [{ ...minimal, userRewrite: { template: '{user}_{db}' } }, '/userRewrite/template', /\{db\}/],
    [{ ...minimal, limits: { maxConnections: -1 } }, '/limits/maxConnections', />= 0/],
    [
      { ...minimal, backend: { host: 'h', caCertificate: '-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----' } },
      '/backend/caCertificate',
      /parse/,
    ],
    [{ ...minimal, backend: { host: 'h', caCertificate: '-----BEGIN CERTIFICATE-----' } }, '/backend/caCertificate', /parse/],
    [{ ...minimal, backend: { host: 'h', caCertificate: LEAF_PEM } }, '/backend/caCertificate', /CA:TRUE/],
    [
      { ...minimal, roles: [{ name: 'app', scramSecret: secret.replace('$4096:', '$9999999999:') }] },
      '/roles/0/scramSecret',
      /1 to 100000 SCRAM iterations/,
    ],
    [{ ...minimal, roles: [{ name: 'app', scramSecret: secret.replace('$4096:', '$100001:') }] }, '/roles/0/scramSecret', /iterations/],
    [{ ...minimal, userRewrite: { template: 'shared_user' } }, '/userRewrite/template', /must contain \{user\}/],
    [{ ...minimal, userRewrite: { template: '{tenant}' } }, '/userRewrite/template', /must contain \{user\}/],
    [{ ...minimal, roles: [{ name: 'é'.repeat(32), password: 'x' }] }, '/roles/0/name', /63 bytes/],
    [{ ...minimal, roles: [{ name: 'app', password: 'x', backendUser: 'ü'.repeat(40) }] }, '/roles/0/backendUser', /63 bytes/],
    [{ ...minimal, authMode: 'passthrough' }, '/backend/database', /required with authMode "passthrough"/],
  ];
  for (const [input, path, message] of cases) {
    const issues = issuesOf(() => validateTenantInput(input));
    const issue = issues.find((i) => i.path === path);
    assert.ok(issue, `${JSON.stringify(input)}: no issue at ${path} in ${JSON.stringify(issues)}`);
    assert.match(issue.message, message);
  }
});

test('a tenants file rejects duplicate ids and names the entry', () => {
  const issues = issuesOf(() => validateTenantsFile({ tenants: [minimal, minimal] }));
  assert.deepEqual(issues, [{ path: '/tenants/1/id', message: 'duplicate tenant id "acme"' }]);
  assert.deepEqual(
    issuesOf(() => validateTenantsFile({})),
    [{ path: '/tenants', message: 'is required' }],
  );
  assert.equal(validateTenantsFile({ tenants: [minimal] })[0]?.limits.maxConnections, 100);
});

test('a backend is an address or a cluster; only the control plane provisions on a cluster', () => {
  assert.deepEqual(
    issuesOf(() => validateTenantInput({ id: 'acme', backend: { port: 5432 } })),
    [{ path: '/backend', message: 'give "host" (an address) or "cluster" (a cluster registered with the control plane)' }],
  );
  assert.equal(validateTenantInput({ id: 'acme', backend: { cluster: 'east' } }).backend.cluster, 'east');
  assert.deepEqual(
    issuesOf(() => validateTenantsFile({ tenants: [{ id: 'acme', backend: { cluster: 'east' } }] })),
    [{ path: '/tenants/0/backend/cluster', message: 'is provisioned by the control plane; a tenants file gives host' }],
  );
});

test('materializeTenant keeps no password, only the secret made from it', async () => {
  const input = validateTenantInput({
    ...minimal,
    roles: [
      { name: 'app', password: 'pencil' },
      { name: 'ro', scramSecret: secret },
    ],
  });
  const tenant = await materializeTenant(input, async (password) => `hashed:${password.length}`);
  assert.deepEqual(tenant.roles, [
    { name: 'app', scramSecret: 'hashed:6' },
    { name: 'ro', scramSecret: secret },
  ]);
  assert.ok(!JSON.stringify(tenant).includes('pencil'));
});

test('limits that are just allowed pass: 63-byte names, 100000 iterations, a CA among other certificates', () => {
  validateTenantInput({
    ...minimal,
    backend: { host: 'h', database: 'd'.repeat(63), caCertificate: `${LEAF_PEM}\n${CA_PEM}` },
    roles: [{ name: 'é'.repeat(31) + 'a', scramSecret: secret.replace('$4096:', '$100000:') }],
    userRewrite: { template: '{user}' },
  });
});
