import { test } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createServer, type AddressInfo } from 'node:net';
import { describeListenFailure, formatListenAddress, parseListenAddress } from './listen.ts';

test('listen addresses: host:port, [ipv6]:port, :port', () => {
  assert.deepEqual(parseListenAddress('127.0.0.1:6432'), { host: '127.0.0.1', port: 6432 });
  assert.deepEqual(parseListenAddress('[::1]:5432'), { host: '::1', port: 5432 });
  assert.deepEqual(parseListenAddress(':5432'), { host: '0.0.0.0', port: 5432 });
  for (const bad of ['5432', '::1:5432', '[zz]:5432', 'host:65536', 'host:', 'a b:1'])
    assert.equal(parseListenAddress(bad), undefined, bad);
  assert.equal(formatListenAddress({ host: '::1', port: 1 }), '[::1]:1');
  assert.equal(formatListenAddress({ host: 'localhost', port: 1 }), 'localhost:1');
});

test('a port in use is described as such; other errors are not listen failures', async (t) => {
  const holder = createServer().listen(0, '127.0.0.1');
  t.after(() => holder.close());
  await once(holder, 'listening');
  const address = { host: '127.0.0.1', port: (holder.address() as AddressInfo).port };
  const second = createServer().listen(address);
  const [error] = await once(second, 'error');
  assert.equal(describeListenFailure(error, address), `127.0.0.1:${address.port} is already in use`);
  assert.equal(describeListenFailure(new Error('boom'), address), undefined);
});
