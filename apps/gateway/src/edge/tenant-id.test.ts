import { test } from 'node:test';
import assert from 'node:assert/strict';
import { TenantIdentifier, TenantIdOrigin, splitOptions, tenantFromOptions } from './tenant-id.ts';
import { Refusal } from '../errors.ts';

const tenants = new TenantIdentifier(['.db.example.com', '.eu.db.example.com']);

function refused(fn: () => unknown, sqlState = '08004'): Refusal {
  try {
    fn();
  } catch (error) {
    assert.ok(error instanceof Refusal, `expected a Refusal, got ${String(error)}`);
    assert.equal(error.sqlState, sqlState);
    assert.equal(error.code, 'TG_ERR_REFUSED');
    return error;
  }
  assert.fail('expected a refusal');
}

test('splitOptions splits on whitespace and undoes backslash escapes as pg_split_opts does', () => {
  assert.deepEqual(splitOptions('-c tenant=acme -c application_name=a\\ b'), [
    { raw: '-c', value: '-c' },
    { raw: 'tenant=acme', value: 'tenant=acme' },
    { raw: '-c', value: '-c' },
    { raw: 'application_name=a\\ b', value: 'application_name=a b' },
  ]);
  assert.deepEqual(splitOptions('  a\t\tb\n'), [
    { raw: 'a', value: 'a' },
    { raw: 'b', value: 'b' },
  ]);
  assert.deepEqual(splitOptions('a\\\\b c\\'), [
    { raw: 'a\\\\b', value: 'a\\b' },
    { raw: 'c\\', value: 'c' },
  ]);
  assert.deepEqual(splitOptions(''), []);
  assert.deepEqual(splitOptions('   '), []);
});

test('tenantFromOptions reads every spelling of the tenant setting and removes it', () => {
  const cases: [string, string, string | undefined][] = [
    ['-c tenant=acme', 'acme', undefined],
    ['-ctenant=acme', 'acme', undefined],
    ['--tenant=acme', 'acme', undefined],
    ['tenant=acme', 'acme', undefined],
    ['-c TENANT=Acme', 'acme', undefined],
    ['-c tenant=acme -c search_path=x', 'acme', '-c search_path=x'],
    ['-c search_path=x   -c tenant=acme', 'acme', '-c search_path=x'],
    ['-c tenant=acme -c application_name=a\\ b', 'acme', '-c application_name=a\\ b'],
    ['--search-path=x -ctenant=acme --work_mem=4MB', 'acme', '--search-path=x --work_mem=4MB'],
    ['-c tenant=acme -c tenant=ACME', 'acme', undefined],
  ];
  for (const [options, tenantId, remaining] of cases) {
    assert.deepEqual(tenantFromOptions(options), { tenantId, remaining }, options);
  }
});

test('tenantFromOptions leaves options without a tenant setting exactly as sent', () => {
  for (const options of ['-c search_path=x', '  -c  a=b\\ c ', '-d tenant=acme', '-c application_name=tenant=x', '-c tenantx=acme']) {
    assert.deepEqual(tenantFromOptions(options), { tenantId: undefined, remaining: options }, options);
  }
  assert.deepEqual(tenantFromOptions(undefined), { tenantId: undefined, remaining: undefined });
  assert.deepEqual(tenantFromOptions(''), { tenantId: undefined, remaining: undefined });
});

test('tenantFromOptions refuses invalid ids and disagreeing settings with 08004', () => {
  assert.match(refused(() => tenantFromOptions('-c tenant=bad_id')).message, /invalid tenant id "bad_id"/);
  assert.match(refused(() => tenantFromOptions('-c tenant=ac\\ me')).message, /invalid tenant id "ac me"/);
  assert.match(refused(() => tenantFromOptions('-c tenant')).message, /invalid tenant id ""/);
  assert.match(refused(() => tenantFromOptions('-c tenant=')).message, /invalid tenant id ""/);
  assert.match(refused(() => tenantFromOptions(`-c tenant=${'a'.repeat(64)}`)).message, /invalid tenant id/);
  assert.match(refused(() => tenantFromOptions('-c tenant=a -c tenant=b')).message, /more than one tenant \("a", "b"\)/);
  assert.deepEqual(tenantFromOptions(`-c tenant=${'a'.repeat(63)}`).tenantId, 'a'.repeat(63));
});

test('fromServerName takes the one label before the longest matching suffix', () => {
  assert.equal(tenants.fromServerName('acme.db.example.com'), 'acme');
  assert.equal(tenants.fromServerName('ACME.DB.Example.COM.'), 'acme');
  assert.equal(tenants.fromServerName('acme.eu.db.example.com'), 'acme');
  assert.equal(tenants.fromServerName('0-a.db.example.com'), '0-a');
  assert.equal(tenants.fromServerName(undefined), undefined);
  assert.equal(tenants.fromServerName('db.example.com'), undefined);
  assert.equal(tenants.fromServerName('localhost'), undefined);
  assert.equal(tenants.fromServerName('acme.example.org'), undefined);
  const twoLabels = refused(() => tenants.fromServerName('www.acme.db.example.com'));
  assert.match(twoLabels.message, /"www\.acme\.db\.example\.com" does not name a tenant/);
  assert.equal(twoLabels.hint, 'Connect to <tenant>.db.example.com.');
  refused(() => tenants.fromServerName('ac_me.db.example.com'));
});

test('identify: from SNI, from options, from both when they agree', () => {
  const parameters = new Map([
    ['user', 'alice'],
    ['options', '-c tenant=acme -c search_path=x'],
    ['database', 'app'],
  ]);
  const both = tenants.identify('acme.db.example.com', parameters);
  assert.equal(both.tenantId, 'acme');
  assert.equal(both.origin, TenantIdOrigin.Both);
  assert.deepEqual(
    [...both.parameters],
    [
      ['user', 'alice'],
      ['options', '-c search_path=x'],
      ['database', 'app'],
    ],
  );
  assert.equal(parameters.get('options'), '-c tenant=acme -c search_path=x', 'the input is not modified');

  const fromOptions = tenants.identify(
    undefined,
    new Map([
      ['user', 'alice'],
      ['options', '-c tenant=acme'],
    ]),
  );
  assert.equal(fromOptions.origin, TenantIdOrigin.Options);
  assert.deepEqual([...fromOptions.parameters], [['user', 'alice']], 'an options parameter left empty is dropped');

  const fromName = tenants.identify('acme.db.example.com', new Map([['user', 'alice']]));
  assert.equal(fromName.origin, TenantIdOrigin.ServerName);
  assert.deepEqual([...fromName.parameters], [['user', 'alice']]);
});

test('identify refuses disagreeing SNI and options with 08004', () => {
  const refusal = refused(() =>
    tenants.identify(
      'acme.db.example.com',
      new Map([
        ['user', 'a'],
        ['options', 'tenant=other'],
      ]),
    ),
  );
  assert.equal(refusal.message, 'the host name names tenant "acme" but options name tenant "other"');
  assert.ok(refusal.hint);
});

test('identify without a tenant refuses with a hint that shows both ways', () => {
  const refusal = refused(() => tenants.identify(undefined, new Map([['user', 'a']])));
  assert.equal(refusal.message, 'no tenant in the connection');
  assert.equal(refusal.detail, 'The client sent no TLS server name (SNI).');
  assert.equal(
    refusal.hint,
    'Connect to <tenant>.db.example.com, or add options=-c tenant=<tenant> (in a URL: ?options=-c%20tenant%3D<tenant>).',
  );
  const otherName = refused(() => tenants.identify('localhost', new Map([['user', 'a']])));
  assert.equal(otherName.detail, 'The host name "localhost" is not a tenant host name.');
  const optionsOnly = refused(() => new TenantIdentifier([]).identify(undefined, new Map([['user', 'a']])));
  assert.equal(optionsOnly.hint, 'Add options=-c tenant=<tenant> (in a URL: ?options=-c%20tenant%3D<tenant>).');
});
