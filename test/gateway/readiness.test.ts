// Readiness that tells the truth (docs/architecture.md, "Drain and shutdown"): a gateway process
// started with a token the real control plane refuses says so at start, in its log (naming the
// variable) and on /readyz, and tells a client that the service is misconfigured rather than to
// retry; with the right token it is ready; with a URL that leads elsewhere it names that variable.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createTestPki } from '@tenantgate/testing';
import { GATEWAY_TOKEN, startTestControlPlane } from '../control-plane/harness.ts';
import { connectError, pgClient, tenantHost } from './harness.ts';
import { gatewayEnvironment, startGatewayProcess, type GatewayProcess } from './app-processes.ts';

interface Readyz {
  readonly status: number;
  readonly body: { status: string; reasons?: { reason: string; variable?: string }[] };
}

async function readyz(gateway: GatewayProcess): Promise<Readyz> {
  const response = await fetch(`http://127.0.0.1:${gateway.adminPort}/readyz`);
  return { status: response.status, body: (await response.json()) as Readyz['body'] };
}

/** /readyz once the first check of the control plane has finished. */
async function settledReadyz(gateway: GatewayProcess): Promise<Readyz> {
  await gateway.logLine((line) => typeof line.msg === 'string' && /^(not )?ready: /.test(line.msg));
  return readyz(gateway);
}

test('a token the control plane refuses: not ready with the reason, the variable logged, clients told it is misconfigured', async (t) => {
  const pki = await createTestPki();
  const controlPlane = await startTestControlPlane(t);
  const gatewayWith = async (url: string, token: string) =>
    startGatewayProcess(t, await gatewayEnvironment(pki, { GATEWAY_CONTROL_PLANE_URL: url, GATEWAY_CONTROL_PLANE_TOKEN: token }));

  const wrong = await gatewayWith(controlPlane.url, 'not-the-gateway-token');
  const refused = await settledReadyz(wrong);
  assert.equal(refused.status, 503);
  assert.deepEqual(refused.body, {
    status: 'not ready',
    reasons: [{ variable: 'GATEWAY_CONTROL_PLANE_TOKEN', reason: 'the control plane refuses GATEWAY_CONTROL_PLANE_TOKEN (HTTP 401)' }],
  });
  const logged = await wrong.logLine((line) => line.level === 'error' && line.variable === 'GATEWAY_CONTROL_PLANE_TOKEN');
  assert.match(String(logged.msg), /^not ready: the control plane refuses GATEWAY_CONTROL_PLANE_TOKEN/);

  const client = await connectError(pgClient(wrong, pki, { servername: tenantHost('acme'), database: 'app' }));
  assert.equal(client.code, '08001');
  assert.equal(client.message, 'the service is misconfigured: the gateway cannot look up tenants');
  assert.match(client.hint ?? '', /Retrying will not help/);

  const right = await gatewayWith(controlPlane.url, GATEWAY_TOKEN);
  assert.deepEqual(await settledReadyz(right), { status: 200, body: { status: 'ready' } });
  // A tenant the control plane does not have is still an unknown tenant, not a misconfiguration.
  assert.equal((await connectError(pgClient(right, pki, { servername: tenantHost('acme'), database: 'app' }))).code, '08004');

  const elsewhere = await gatewayWith(new URL('/not-the-api/', controlPlane.url).href, GATEWAY_TOKEN);
  const misdirected = await settledReadyz(elsewhere);
  assert.equal(misdirected.status, 503);
  assert.equal(misdirected.body.reasons?.[0]?.variable, 'GATEWAY_CONTROL_PLANE_URL', JSON.stringify(misdirected.body));
});
