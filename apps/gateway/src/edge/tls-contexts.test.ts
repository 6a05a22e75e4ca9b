import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createTestPki } from '@tenantgate/testing';
import { tlsServerEndPoint } from '@tenantgate/wire';
import { TlsContexts, type CertificateInput } from './tls-contexts.ts';
import { TlsConfigError } from '../errors.ts';

const pki = await createTestPki({ edgeSuffixes: ['db.example.test', 'db.other.test'] });
const other = await pki.ca.issueServerCertificate({ dnsNames: ['*.eu.db.example.test'] });
const edge: CertificateInput = { suffixes: ['.db.example.test', '.db.other.test'], certPem: pki.edge.chainPem, keyPem: pki.edge.keyPem };
const eu: CertificateInput = { suffixes: ['.eu.db.example.test'], certPem: other.chainPem, keyPem: other.keyPem };

test('select picks the certificate of the longest matching suffix, else the first', () => {
  const contexts = new TlsContexts([edge, eu]);
  const table = contexts.current;
  const [first, second] = table.certificates;
  assert.equal(table.fallback, first);
  assert.equal(table.select('acme.db.example.test'), first);
  assert.equal(table.select('acme.db.other.test'), first);
  assert.equal(table.select('ACME.EU.DB.example.test.'), second);
  assert.equal(table.select(undefined), first);
  assert.equal(table.select('localhost'), first);
  assert.equal(table.select('eu.db.example.test'), first, 'the bare suffix domain names no tenant host');
  assert.match(second.certificate.subjectAltName ?? '', /\*\.eu\.db\.example\.test/);
});

test('contexts are built once per certificate and shared by every connection', () => {
  const table = new TlsContexts([edge]).current;
  assert.equal(table.select('a.db.example.test').context, table.select('b.db.example.test').context);
  assert.equal(table.select('a.db.example.test').context, table.fallback.context);
});

test('each certificate carries its tls-server-end-point data for SCRAM-SHA-256-PLUS', () => {
  const { fallback } = new TlsContexts([edge]).current;
  assert.deepEqual(fallback.tlsServerEndPoint, tlsServerEndPoint(pki.edge.cert));
  assert.equal(fallback.certificate.fingerprint256, pki.edge.cert.fingerprint256);
});

test('reload swaps the whole table; a failed reload keeps the old one', () => {
  const contexts = new TlsContexts([edge]);
  const before = contexts.current;
  contexts.reload([eu, edge]);
  const after = contexts.current;
  assert.notEqual(after, before);
  assert.equal(after.fallback.certificate.fingerprint256, other.cert.fingerprint256);
  assert.equal(before.fallback.certificate.fingerprint256, pki.edge.cert.fingerprint256, 'a table in use never changes');

  const mismatched: CertificateInput = { suffixes: ['.db.example.test'], certPem: pki.edge.chainPem, keyPem: other.keyPem };
  assert.throws(
    () => contexts.reload([mismatched]),
    (error: unknown) => {
      assert.ok(error instanceof TlsConfigError);
      assert.equal(error.code, 'TG_ERR_TLS_CONFIG');
      assert.match(error.message, /server certificate 1 \(\.db\.example\.test\): .*key values mismatch/);
      return true;
    },
  );
  assert.equal(contexts.current, after);
});

test('no certificate, or PEM that is not one, is a configuration error', () => {
  assert.throws(() => new TlsContexts([]), TlsConfigError);
  assert.throws(() => new TlsContexts([{ suffixes: ['.x.test'], certPem: 'not pem', keyPem: pki.edge.keyPem }]), TlsConfigError);
});
