import assert from 'node:assert/strict';
import { test } from 'node:test';
import { createSecureContext, type SecureContextOptions } from 'node:tls';
import { createTestPki } from '@tenantgate/testing';
import { BackendTlsConfigError } from '../errors.ts';
import {
  BackendTlsContexts,
  TlsSessionCache,
  backendIdentityCheck,
  backendServerName,
  backendTlsIdentity,
  sniName,
  type BackendTlsIdentity,
} from './tls.ts';

const pki = await createTestPki();
const gateway = await pki.client('gateway');
const tenant = await pki.client('acme');
const defaults = { caPem: pki.ca.certPem, clientCertificate: { certPem: gateway.chainPem, keyPem: gateway.keyPem } };
const identity: BackendTlsIdentity = { caPem: pki.ca.certPem, certPem: gateway.chainPem, keyPem: gateway.keyPem };

function countingFactory(): {
  create: (options: SecureContextOptions) => ReturnType<typeof createSecureContext>;
  calls: SecureContextOptions[];
} {
  const calls: SecureContextOptions[] = [];
  return {
    calls,
    create(options) {
      calls.push(options);
      return createSecureContext(options);
    },
  };
}

test('a tenant without its own CA or client certificate gets the gateway defaults', () => {
  assert.deepEqual(backendTlsIdentity({}, defaults), identity);
  const own = backendTlsIdentity({ caCertificate: pki.wrongCa.certPem }, defaults, { certPem: tenant.chainPem, keyPem: tenant.keyPem });
  assert.deepEqual(own, { caPem: pki.wrongCa.certPem, certPem: tenant.chainPem, keyPem: tenant.keyPem });
});

test('a secure context is built once per identity, with TLS 1.2 as the floor', () => {
  const factory = countingFactory();
  const contexts = new BackendTlsContexts({ createSecureContext: factory.create });
  const first = contexts.get(identity);
  for (let i = 0; i < 50; i++) assert.equal(contexts.get({ ...identity }), first, 'equal PEMs are one identity');
  assert.equal(contexts.builds, 1);
  assert.deepEqual(factory.calls, [{ ca: pki.ca.certPem, cert: gateway.chainPem, key: gateway.keyPem, minVersion: 'TLSv1.2' }]);

  const other = contexts.get({ ...identity, certPem: tenant.chainPem, keyPem: tenant.keyPem });
  assert.notEqual(other, first);
  assert.notEqual(contexts.get({ ...identity, caPem: pki.wrongCa.certPem }), first, 'another CA is another identity');
  assert.equal(contexts.builds, 3);
  assert.equal(contexts.size, 3);
});

test('the context cache is bounded, least recently used out first', () => {
  const contexts = new BackendTlsContexts({ maxEntries: 2 });
  const a = contexts.get(identity);
  const tenantIdentity = { ...identity, certPem: tenant.chainPem, keyPem: tenant.keyPem };
  contexts.get(tenantIdentity);
  assert.equal(contexts.get(identity), a, 'a is now the most recent');
  contexts.get({ ...identity, caPem: pki.wrongCa.certPem });
  assert.equal(contexts.size, 2);
  assert.equal(contexts.get(identity), a, 'a survived');
  assert.equal(contexts.builds, 3);
  contexts.get(tenantIdentity);
  assert.equal(contexts.builds, 4, 'the tenant identity was evicted and is built again');
});

test('a certificate and key that do not belong together are a configuration error naming no secret', () => {
  const contexts = new BackendTlsContexts();
  assert.throws(
    () => contexts.get({ ...identity, keyPem: tenant.keyPem }),
    (error: unknown) => {
      assert.ok(error instanceof BackendTlsConfigError);
      assert.equal(error.code, 'TG_ERR_BACKEND_TLS_CONFIG');
      assert.equal(error.sqlState, '08001');
      assert.equal(error.message, "the gateway's TLS settings for the tenant's database are invalid");
      assert.match(error.logDetail, /key values mismatch/);
      assert.doesNotMatch(error.logDetail, /PRIVATE KEY/);
      return true;
    },
  );
  assert.throws(() => contexts.get({ ...identity, caPem: 'not a certificate' }), BackendTlsConfigError);
  assert.equal(contexts.size, 0);
});

test('TLS sessions are kept per backend, name and secure context, bounded', () => {
  const cache = new TlsSessionCache({ maxEntries: 2 });
  const contexts = new BackendTlsContexts();
  const secureContext = contexts.get(identity);
  const otherContext = contexts.get({ ...identity, certPem: tenant.chainPem, keyPem: tenant.keyPem });
  const key = { host: '10.0.0.1', port: 5432, serverName: 'a.internal', secureContext };
  const entry = (name: string) => ({ session: Buffer.from(name), peerCertificate: pki.backend.cert });
  cache.set(key, entry('one'));
  assert.deepEqual(cache.get({ ...key }), entry('one'));
  assert.equal(cache.get({ ...key, secureContext: otherContext }), undefined, 'another client certificate never resumes this session');
  assert.equal(cache.get({ ...key, serverName: 'b.internal' }), undefined);
  assert.equal(cache.get({ ...key, port: 5433 }), undefined);

  cache.set({ ...key, port: 5433 }, entry('two'));
  cache.get(key);
  cache.set({ ...key, port: 5434 }, entry('three'));
  assert.equal(cache.size, 2);
  assert.deepEqual(cache.get(key), entry('one'), 'recently used survives');
  assert.equal(cache.get({ ...key, port: 5433 }), undefined, 'least recently used was dropped');
  cache.delete(key);
  assert.equal(cache.get(key), undefined);
});

test('verify-full checks serverName, else host; IP addresses only against IP SANs', () => {
  assert.equal(backendServerName({ host: '10.0.3.17', serverName: 'acme.internal' }), 'acme.internal');
  assert.equal(backendServerName({ host: '10.0.3.17' }), '10.0.3.17');
  assert.equal(sniName('acme.internal'), 'acme.internal');
  assert.equal(sniName('10.0.3.17'), undefined);
  assert.equal(sniName('::1'), undefined);

  const backend = pki.backend.cert.toLegacyObject();
  assert.equal(backendIdentityCheck('localhost')('ignored', backend), undefined);
  assert.equal(backendIdentityCheck('127.0.0.1')('localhost', backend), undefined);
  const code = (error: Error | undefined) => (error as NodeJS.ErrnoException | undefined)?.code;
  assert.equal(code(backendIdentityCheck('127.0.0.2')('127.0.0.1', backend)), 'ERR_TLS_CERT_ALTNAME_INVALID');
  assert.equal(code(backendIdentityCheck('db.example.test')('localhost', backend)), 'ERR_TLS_CERT_ALTNAME_INVALID');
});
