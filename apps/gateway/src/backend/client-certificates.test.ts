import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createTestPki } from '@tenantgate/testing';
import { ClientCertificateStore, scramMockKey } from './client-certificates.ts';
import { SecretsError } from '../errors.ts';

test('client certificates are read once per name, and a missing one can appear later', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'tg-secrets-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const store = new ClientCertificateStore(dir);
  await assert.rejects(store.get('acme'), (error: Error) => {
    assert.ok(error instanceof SecretsError);
    // Both files are read at once: either failure may come first.
    assert.match(error.message, /^client (certificate|key) "acme": cannot read .*acme\.(crt|key): no such file/);
    return true;
  });
  await writeFile(join(dir, 'acme.crt'), 'CERT');
  await writeFile(join(dir, 'acme.key'), 'KEY');
  assert.deepEqual(await store.get('acme'), { certPem: 'CERT', keyPem: 'KEY' });
  await writeFile(join(dir, 'acme.crt'), 'CERT2');
  assert.deepEqual(await store.get('acme'), { certPem: 'CERT', keyPem: 'KEY' }, 'cached until clear()');
  store.clear();
  assert.deepEqual(await store.get('acme'), { certPem: 'CERT2', keyPem: 'KEY' });
  await assert.rejects(store.get('../acme'), /not a plain file name/);
  await assert.rejects(new ClientCertificateStore(undefined).get('acme'), /GATEWAY_SECRETS_DIR/);
});

test('the SCRAM mock key is stable for one edge key and differs between keys', async () => {
  const pki = await createTestPki();
  const other = await pki.ca.issueServerCertificate({ dnsNames: ['x.test'] });
  assert.deepEqual(scramMockKey(pki.edge.keyPem), scramMockKey(pki.edge.keyPem));
  assert.equal(scramMockKey(pki.edge.keyPem).length, 32);
  assert.notDeepEqual(scramMockKey(pki.edge.keyPem), scramMockKey(other.keyPem));
});
