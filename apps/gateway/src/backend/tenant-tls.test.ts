import { test } from 'node:test';
import assert from 'node:assert/strict';
import { validateTenantInput } from '@tenantgate/tenancy';
import { createTestPki } from '@tenantgate/testing';
import { BackendTls } from './tenant-tls.ts';
import { ClientCertificateStore } from './client-certificates.ts';
import { BackendTlsConfigError } from '../errors.ts';

const pki = await createTestPki();
const tenant = { ...validateTenantInput({ id: 'acme', backend: { host: 'db' } }), roles: [] };

test('new backend defaults replace the old for new contexts; defaults that do not load leave the old in use', async () => {
  const [first, second] = [await pki.client('gateway'), await pki.client('gateway')];
  const backendTls = new BackendTls(
    { caPem: pki.ca.certPem, clientCertificate: { certPem: first.chainPem, keyPem: first.keyPem } },
    new ClientCertificateStore(undefined),
  );
  const before = await backendTls.contextFor(tenant);
  for (const broken of [
    { caPem: 'not a certificate', clientCertificate: { certPem: second.chainPem, keyPem: second.keyPem } },
    { caPem: pki.ca.certPem, clientCertificate: { certPem: second.chainPem, keyPem: first.keyPem } },
  ]) {
    assert.throws(() => backendTls.reloadDefaults(broken), BackendTlsConfigError);
    assert.equal(await backendTls.contextFor(tenant), before, 'the old defaults stay');
  }
  backendTls.reloadDefaults({ caPem: pki.ca.certPem, clientCertificate: { certPem: second.chainPem, keyPem: second.keyPem } });
  assert.notEqual(await backendTls.contextFor(tenant), before, 'the renewed client certificate is used');
});
