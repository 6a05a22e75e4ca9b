// Drain reaches connections still being set up: a client in the middle of SCRAM when the
// gateway starts draining is told 57P01, not left to finish after the gateway has stopped.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { connect } from 'node:tls';
import { FrameDecoder, parseBackendMessage, serializeStartupMessage, type BackendMessage } from '@tenantgate/wire';
import { createGateway, createLogger, createMetrics, TenantsFileDirectory } from '@tenantgate/gateway';
import { createTempDir, createTestPki, removeTempDir } from '@tenantgate/testing';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';

test('a client mid-authentication when drain starts gets FATAL 57P01', async (t) => {
  const pki = await createTestPki();
  const gatewayClient = await pki.client('app');
  const dir = createTempDir('drain');
  t.after(() => removeTempDir(dir));
  const tenantsFile = join(dir, 'tenants.json');
  await writeFile(
    tenantsFile,
    JSON.stringify({ tenants: [{ id: 'acme', backend: { host: '127.0.0.1', port: 1 }, roles: [{ name: 'app', password: 'pw' }] }] }),
  );
  const gateway = await createGateway({
    settings: {
      listen: { host: '127.0.0.1', port: 0 },
      sniSuffixes: ['.db.example.test'],
      allowPlaintext: false,
      handshakeTimeoutMs: 5000,
      maxPendingConnections: 10,
      authTimeoutMs: 30_000,
      backendConnectTimeoutMs: 5000,
      secretsDir: undefined,
    },
    certificates: [{ suffixes: ['.db.example.test'], certPem: pki.edge.chainPem, keyPem: pki.edge.keyPem }],
    backendDefaults: { caPem: pki.ca.certPem, clientCertificate: { certPem: gatewayClient.chainPem, keyPem: gatewayClient.keyPem } },
    tenants: await TenantsFileDirectory.open(tenantsFile),
    logger: createLogger({ level: 'silent' }),
    metrics: createMetrics(),
  });
  t.after(() => gateway.close());

  // Direct TLS (ALPN postgresql), a StartupMessage, then silence after AuthenticationSASL.
  const socket = connect({
    host: '127.0.0.1',
    port: gateway.address.port,
    servername: 'acme.db.example.test',
    ca: pki.ca.certPem,
    ALPNProtocols: ['postgresql'],
  });
  t.after(() => socket.destroy());
  await once(socket, 'secureConnect');
  const messages = backendMessages(socket);
  socket.write(
    serializeStartupMessage({
      minorVersion: 0,
      parameters: new Map([
        ['user', 'app'],
        ['database', 'postgres'],
      ]),
    }),
  );
  assert.equal((await messages.next()).value?.kind, 'AuthenticationSASL');

  await gateway.drain(5000);
  const error = (await messages.next()).value;
  assert.equal(error?.kind, 'ErrorResponse');
  assert.equal(error.kind === 'ErrorResponse' ? error.fields.code : undefined, '57P01');
});

async function* backendMessages(socket: ReturnType<typeof connect>): AsyncGenerator<BackendMessage> {
  const decoder = new FrameDecoder();
  for await (const chunk of socket) {
    decoder.push(chunk as Buffer);
    for (let frame = decoder.next(); frame !== null; frame = decoder.next()) yield parseBackendMessage(frame);
  }
}
