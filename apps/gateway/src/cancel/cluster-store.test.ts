import { test } from 'node:test';
import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import type { CancelEntry } from './registry.ts';
import {
  ClusterCancelKeyStore,
  ClusterMessage,
  fromWire,
  toWire,
  type ClusterReply,
  type ClusterRequest,
  type WorkerChannel,
} from './cluster-store.ts';

/** One worker's IPC channel: what it sends is recorded; `deliver` plays the primary. */
class Channel extends EventEmitter implements WorkerChannel {
  readonly sent: (ClusterRequest | ClusterReply)[] = [];
  send(message: ClusterRequest | ClusterReply): void {
    this.sent.push(message);
  }
  deliver(message: unknown): void {
    this.emit('message', message);
  }
}

const entry: CancelEntry = {
  processId: 42,
  secretKey: Buffer.from('01020304', 'hex'),
  target: { tenantId: 'acme', host: '10.0.0.1', port: 5432, serverName: 'db.internal', processId: 777, secretKey: Buffer.alloc(32, 7) },
};

test('an entry survives the trip over IPC', () => {
  assert.deepEqual(fromWire(JSON.parse(JSON.stringify(toWire(entry)))), entry);
});

test('a local key is answered without asking the primary', async () => {
  const channel = new Channel();
  const store = new ClusterCancelKeyStore(channel);
  assert.equal(await store.add(entry), true);
  assert.deepEqual(await store.get(entry), entry);
  assert.deepEqual(channel.sent, []);
  await store.close();
});

test("another worker's key comes back through the primary", async () => {
  const channel = new Channel();
  const store = new ClusterCancelKeyStore(channel);
  const found = store.get(entry);
  await new Promise((resolve) => setImmediate(resolve));
  const [lookup] = channel.sent as ClusterRequest[];
  assert.equal(lookup?.type, ClusterMessage.Lookup);
  assert.equal(lookup?.processId, 42);
  assert.equal(lookup?.secretKey, entry.secretKey.toString('base64'));
  channel.deliver({ type: ClusterMessage.Result, id: lookup!.id, entry: toWire(entry) });
  assert.deepEqual(await found, entry);
  await store.close();
});

test('no answer in time is an unknown key, as PostgreSQL drops those', async () => {
  const store = new ClusterCancelKeyStore(new Channel(), 10);
  assert.equal(await store.get(entry), undefined);
  await store.close();
});

test("the primary's question is answered from this worker's keys", async () => {
  const channel = new Channel();
  const store = new ClusterCancelKeyStore(channel);
  await store.add(entry);
  channel.deliver({ type: ClusterMessage.Find, id: 5, processId: 42, secretKey: entry.secretKey.toString('base64') });
  channel.deliver({ type: ClusterMessage.Find, id: 6, processId: 42, secretKey: Buffer.alloc(4).toString('base64') });
  await new Promise((resolve) => setImmediate(resolve));
  assert.deepEqual(channel.sent, [
    { type: ClusterMessage.Found, id: 5, entry: toWire(entry) },
    { type: ClusterMessage.Found, id: 6, entry: null },
  ]);
  await store.close();
});
