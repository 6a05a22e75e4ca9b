// `npm run tenantgate -- connect <tenant> <role>` (tools/tenantgate.ts): the command makes its key
// and CSR locally, sends the control plane the CSR only (the test reads every request it sends,
// through a recording proxy), writes key and certificate with mode 0600, and prints a psql
// command that logs the role in through the gateway with no password.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { stat, readFile, writeFile } from 'node:fs/promises';
import { createServer, request as httpRequest } from 'node:http';
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { CertificateIssuer } from '@tenantgate/control-plane';
import { ControlPlaneDirectory, createLogger, createMetrics } from '@tenantgate/gateway';
import { createCertificateAuthority, createTestPki, requirePsql } from '@tenantgate/testing';
import { ADMIN_TOKEN, call, GATEWAY_TOKEN, startTestControlPlane } from '../control-plane/harness.ts';
import { createTestGateway, scratchDir, startCertBackend, SUFFIX } from '../gateway/harness.ts';

const run = promisify(execFile);
const ROOT = fileURLToPath(new URL('../..', import.meta.url));

test('connect makes the key here, sends only a CSR, and prints a psql command that logs in without a password', async (t) => {
  const pki = await createTestPki();
  const dir = scratchDir(t, 'tenantgate-connect');
  const backend = await startCertBackend(t, pki);
  const issuingCa = await createCertificateAuthority({ commonName: 'issuing CA' });
  const controlPlane = await startTestControlPlane(t, { issuer: await CertificateIssuer.load(issuingCa.certPem, issuingCa.keyPem) });
  const created = await call(controlPlane.url, 'POST', '/v1/tenants', {
    json: { id: 'acme', authMode: 'certificate', backend: { host: '127.0.0.1', port: backend.port, database: 'app' } },
  });
  assert.equal(created.status, 201, JSON.stringify(created.body));
  const tenants = new ControlPlaneDirectory({
    controlPlaneUrl: controlPlane.url,
    controlPlaneToken: GATEWAY_TOKEN,
    metrics: createMetrics(),
    logger: createLogger({ level: 'silent' }),
  });
  t.after(() => tenants.close());
  const gateway = await createTestGateway(pki, tenants);
  t.after(() => gateway.close());
  const caFile = join(dir, 'ca.crt');
  await writeFile(caFile, pki.ca.certPem);

  // Every request the command makes goes through here, body and all.
  const sent: string[] = [];
  const target = new URL(controlPlane.url);
  const proxy = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      sent.push(`${req.method} ${req.url}\n${body.toString()}`);
      const forward = httpRequest(
        { host: target.hostname, port: target.port, method: req.method, path: req.url, headers: req.headers },
        (answer) => {
          res.writeHead(answer.statusCode ?? 502, answer.headers);
          answer.pipe(res);
        },
      );
      forward.end(body);
    });
  });
  proxy.listen(0, '127.0.0.1');
  await once(proxy, 'listening');
  t.after(() => proxy.close());

  const args = ['connect', 'acme', 'app', '--control-plane', `http://127.0.0.1:${(proxy.address() as AddressInfo).port}`];
  args.push('--gateway', `127.0.0.1:${gateway.address.port}`, '--domain', SUFFIX, '--ca', caFile, '--ttl', '600');
  const env = { ...process.env, TENANTGATE_DATA_DIR: dir, TENANTGATE_ADMIN_TOKEN: ADMIN_TOKEN };
  const { stdout } = await run(process.execPath, ['--conditions=@tenantgate/source', join(ROOT, 'tools/tenantgate.ts'), ...args], {
    cwd: dir,
    env,
  });
  const command = /^psql "(.+)"$/m.exec(stdout);
  assert.ok(command, stdout);
  assert.match(stdout, /^certificate for app of acme, valid until \d{4}-\d\d-\d\dT/);

  const keyFile = join(dir, 'clients', 'acme-app.key');
  const certFile = join(dir, 'clients', 'acme-app.crt');
  for (const file of [keyFile, certFile]) assert.equal((await stat(file)).mode & 0o777, 0o600, file);
  const key = await readFile(keyFile, 'utf8');
  const keyBody = key.split('\n').slice(1, -2).join('');
  assert.equal(sent.length, 1);
  assert.match(sent[0] ?? '', /^POST \/v1\/tenants\/acme\/roles\/app\/certificates\n/);
  assert.match(sent[0] ?? '', /BEGIN CERTIFICATE REQUEST/);
  assert.doesNotMatch(sent[0] ?? '', /PRIVATE KEY/);
  assert.ok(!(sent[0] ?? '').includes(keyBody.slice(0, 40)), 'no part of the key was sent');

  const psql = await run(requirePsql(), ['-X', '-w', command[1] as string, '-Atc', 'select current_user'], {
    cwd: dir,
    env: { ...Object.fromEntries(Object.entries(process.env).filter(([name]) => !name.startsWith('PG'))), HOME: dir },
  });
  assert.equal(psql.stdout.trim(), 'app');
});

test('connect says what is wrong: a bad command line, an unknown tenant', async (t) => {
  const dir = scratchDir(t, 'tenantgate-connect-errors');
  const env = { ...process.env, TENANTGATE_DATA_DIR: dir, TENANTGATE_ADMIN_TOKEN: ADMIN_TOKEN };
  const tool = join(ROOT, 'tools/tenantgate.ts');
  await assert.rejects(
    run(process.execPath, ['--conditions=@tenantgate/source', tool, 'connect', 'acme'], { env }),
    (error: { code: number; stderr: string }) => {
      assert.equal(error.code, 2);
      assert.match(error.stderr, /expected: connect <tenant> <role>\nusage: npm run tenantgate/);
      return true;
    },
  );
  const controlPlane = await startTestControlPlane(t);
  await assert.rejects(
    run(process.execPath, ['--conditions=@tenantgate/source', tool, 'connect', 'nobody', 'app', '--control-plane', controlPlane.url], {
      env,
    }),
    (error: { code: number; stderr: string }) => {
      assert.equal(error.code, 1);
      assert.match(error.stderr, /^tenantgate connect: the control plane answered 501: this control plane issues no client certificates/);
      return true;
    },
  );
});
