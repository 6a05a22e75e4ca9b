import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PemReadError, pemSource, readPemSource } from './pem.ts';

const CERT = '-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----';

test('a value is PEM when it starts with -----BEGIN, a path otherwise', () => {
  assert.deepEqual(pemSource('/etc/edge.crt', 'certificate'), { kind: 'path', path: '/etc/edge.crt' });
  assert.deepEqual(pemSource(CERT, 'certificate'), { kind: 'pem', pem: CERT });
  assert.deepEqual(pemSource(CERT.replaceAll('\n', '\\n'), 'certificate'), { kind: 'pem', pem: CERT });
  assert.equal(pemSource(CERT, 'key'), undefined);
  assert.equal(pemSource('', 'certificate'), undefined);
});

test('readPemSource reads a path, and names it in a short reason when it cannot', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'tg-pem-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  await writeFile(join(dir, 'a.pem'), CERT);
  assert.equal(await readPemSource({ kind: 'path', path: join(dir, 'a.pem') }), CERT);
  assert.equal(await readPemSource({ kind: 'pem', pem: CERT }), CERT);
  await assert.rejects(readPemSource({ kind: 'path', path: 'missing.crt' }), (error: PemReadError) => {
    assert.equal(error.message, 'cannot read missing.crt: no such file');
    return error.code === 'TG_ERR_PEM_READ';
  });
  await assert.rejects(readPemSource({ kind: 'path', path: dir }), /^PemReadError: cannot read .*: is a directory$/);
});
