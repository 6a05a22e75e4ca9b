import { test } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { connect, createServer, type AddressInfo, type Socket } from 'node:net';
import { createMetrics } from './telemetry/index.ts';
import { sendRefusal } from './refusal.ts';
import { Refusal } from './errors.ts';
import { backendMessages, connectRaw, readUntilClose } from './testing/front-door.ts';
import { SqlState } from '@tenantgate/wire';

async function serverSocket(t: import('node:test').TestContext): Promise<{ port: number; accepted: Promise<Socket> }> {
  const server = createServer();
  t.after(() => server.close());
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const accepted = once(server, 'connection').then(([socket]) => socket as Socket);
  return { port: (server.address() as AddressInfo).port, accepted };
}

test('sendRefusal writes the error, closes, and counts the SQLSTATEs of the refusal table', async (t) => {
  const { port, accepted } = await serverSocket(t);
  const client = await connectRaw(port);
  const received = readUntilClose(client);
  const metrics = createMetrics();
  sendRefusal(await accepted, new Refusal(SqlState.ConnectionRejected, 'no tenant'), { metrics, graceMs: 100 });
  const { bytes } = await received;
  assert.equal((backendMessages(bytes)[0] as { fields: { code: string } }).fields.code, '08004');
  const counted = await metrics.registry.getSingleMetric('tenantgate_refusals_total')!.get();
  assert.equal(counted.values.find((v) => v.labels.sqlstate === '08004')?.value, 1);
});

test('sendRefusal destroys the socket when the client keeps its side open', async (t) => {
  const { port, accepted } = await serverSocket(t);
  const client = connect({ host: '127.0.0.1', port, allowHalfOpen: true });
  t.after(() => client.destroy());
  client.on('data', () => client.write('bytes the gateway reads and drops'));
  const socket = await accepted;
  const closed = once(socket, 'close');
  sendRefusal(socket, new Refusal(SqlState.InternalError, 'not counted'), { graceMs: 100 });
  await closed;
});
