// Certificates reload when their files change, without a signal
// (docs/architecture.md, "Drain and shutdown"): a gateway process serving its edge certificate
// from files serves a replaced one to the next client while an open session carries on; a
// broken replacement leaves the last good one in use with one error line; the admin port
// exports when each one expires.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { rename, writeFile } from 'node:fs/promises';
import { connect } from 'node:net';
import { join } from 'node:path';
import { connect as connectTls } from 'node:tls';
import { createTestPki, TEST_DOMAIN, wildcardNames, type IssuedCertificate } from '@tenantgate/testing';
import { serializeSSLRequest } from '@tenantgate/wire';
import { connectPg, PASSWORD, scratchDir, startCertBackend, tenantHost } from './harness.ts';
import { gatewayEnvironment, startGatewayProcess, type GatewayProcess } from './app-processes.ts';

/** The serial number of the certificate the gateway presents to a new client now. */
async function servedSerial(gateway: GatewayProcess, ca: string): Promise<string> {
  const socket = connect(gateway.address.port, '127.0.0.1');
  await once(socket, 'connect');
  socket.write(serializeSSLRequest());
  const [answer] = (await once(socket, 'data')) as [Buffer];
  assert.equal(answer.toString(), 'S');
  const tls = connectTls({ socket, ca, servername: tenantHost('acme') });
  await once(tls, 'secureConnect');
  const serial = tls.getPeerCertificate().serialNumber;
  tls.destroy();
  return serial;
}

test('a certificate file replaced on disk is served to the next client without a signal; a broken one is not', async (t) => {
  const pki = await createTestPki();
  const dir = scratchDir(t, 'gw-cert-reload');
  const backend = await startCertBackend(t, pki);
  const tenantsFile = join(dir, 'tenants.json');
  await writeFile(
    tenantsFile,
    JSON.stringify({
      tenants: [{ id: 'acme', backend: { host: '127.0.0.1', port: backend.port }, roles: [{ name: 'app', password: PASSWORD }] }],
    }),
  );
  const [certFile, keyFile] = [join(dir, 'edge.crt'), join(dir, 'edge.key')];
  /** As a renewal does it: each file written aside, then renamed over the old one. */
  const install = async (certificate: Pick<IssuedCertificate, 'chainPem' | 'keyPem'>): Promise<void> => {
    await writeFile(`${keyFile}.new`, certificate.keyPem);
    await writeFile(`${certFile}.new`, certificate.chainPem);
    await rename(`${keyFile}.new`, keyFile);
    await rename(`${certFile}.new`, certFile);
  };
  await install(pki.edge);
  const gateway = await startGatewayProcess(
    t,
    await gatewayEnvironment(pki, { GATEWAY_TLS_CERT: certFile, GATEWAY_TLS_KEY: keyFile, GATEWAY_TENANTS_FILE: tenantsFile }),
  );
  const ca = pki.ca.certPem;
  assert.equal(await servedSerial(gateway, ca), pki.edge.cert.serialNumber);
  const expiry = await gateway.metric('tenantgate_certificate_expiry_seconds', `certificate="edge:.${TEST_DOMAIN}"`);
  const left = (pki.edge.cert.validToDate.getTime() - Date.now()) / 1000;
  assert.ok(Math.abs(expiry - left) < 120, `expiry ${expiry} s, expected about ${left} s`);
  const session = await connectPg(t, gateway, pki, { servername: tenantHost('acme'), database: 'app' });

  const renewed = await pki.ca.issueServerCertificate({ dnsNames: wildcardNames([TEST_DOMAIN]) });
  await install(renewed);
  for (let i = 0; i < 100 && (await servedSerial(gateway, ca)) !== renewed.cert.serialNumber; i++) {
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  assert.equal(await servedSerial(gateway, ca), renewed.cert.serialNumber, 'the renewed certificate is served');
  assert.equal((await session.query<{ one: number }>('select 1 as one')).rows[0]!.one, 1, 'the open session carries on');
  await gateway.logLine((line) => line.msg === 'edge certificates reloaded');

  // A broken file (a certificate without its key): the last good certificate stays, one error line.
  await writeFile(certFile, pki.backend.chainPem);
  await gateway.logLine((line) => line.msg === 'edge certificates reload failed; the previous ones stay in use');
  await new Promise((resolve) => setTimeout(resolve, 3000));
  assert.equal(gateway.lines.filter((line) => line.level === 'error').length, 1, 'one error line for one broken file');
  assert.equal(await servedSerial(gateway, ca), renewed.cert.serialNumber);
  assert.equal((await session.query<{ one: number }>('select 1 as one')).rows[0]!.one, 1);
  await session.end();
});
