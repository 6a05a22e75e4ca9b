import { test } from 'node:test';
import assert from 'node:assert/strict';
import { cidrAllowList, isAddressAllowed, isLocalHost, parseCidr } from './cidr.ts';

test('parseCidr accepts IPv4 and IPv6 blocks and rejects the rest', () => {
  assert.deepEqual(parseCidr('10.0.0.0/8'), { address: '10.0.0.0', prefix: 8, family: 'ipv4' });
  assert.deepEqual(parseCidr('::/0'), { address: '::', prefix: 0, family: 'ipv6' });
  for (const bad of ['10.0.0.0', '10.0.0.0/33', '::/129', 'x/8', '/8', '10.0.0.0/-1', '10.0.0.0/8/8', '10.0.0.0/ 8']) {
    assert.equal(parseCidr(bad), undefined, bad);
  }
});

test('isAddressAllowed matches plain, IPv6 and IPv4-mapped client addresses', () => {
  const list = cidrAllowList(['10.1.0.0/16', '2001:db8::/32']);
  assert.equal(isAddressAllowed(list, '10.1.2.3'), true);
  assert.equal(isAddressAllowed(list, '::ffff:10.1.2.3'), true);
  assert.equal(isAddressAllowed(list, '10.2.0.1'), false);
  assert.equal(isAddressAllowed(list, '::ffff:10.2.0.1'), false);
  assert.equal(isAddressAllowed(list, '2001:db8::1'), true);
  assert.equal(isAddressAllowed(list, '2001:db9::1'), false);
  assert.equal(isAddressAllowed(list, 'not-an-address'), false);
});

test('the default allow-list admits every address', () => {
  const list = cidrAllowList(['0.0.0.0/0', '::/0']);
  for (const address of ['127.0.0.1', '::1', '::ffff:192.0.2.1', 'fe80::1']) assert.equal(isAddressAllowed(list, address), true);
});

test('local hosts: loopback, link-local and localhost, in every spelling; other addresses and names are not', () => {
  for (const host of [
    '127.0.0.1',
    '127.1.2.3',
    '169.254.169.254',
    '0.0.0.0',
    '::1',
    '[::1]',
    'fe80::1',
    '::ffff:127.0.0.1',
    'localhost',
    'LOCALHOST.',
    'db.localhost',
  ]) {
    assert.equal(isLocalHost(host), true, host);
  }
  for (const host of ['10.0.3.17', '192.168.1.1', '2001:db8::1', 'db.internal', 'localhost.example.com', '128.0.0.1']) {
    assert.equal(isLocalHost(host), false, host);
  }
});
