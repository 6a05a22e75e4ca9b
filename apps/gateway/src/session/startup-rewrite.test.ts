import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { Tenant, TenantRole } from '@tenantgate/tenancy';
import { MAX_ROLE_NAME_BYTES, rewriteStartup, type RewriteStartupInput } from './startup-rewrite.ts';
import { Refusal } from '../errors.ts';

type TenantShape = RewriteStartupInput['tenant'];

function tenant(overrides: Partial<Pick<Tenant, 'userRewrite' | 'backend'>> = {}): TenantShape {
  return { id: 'acme', userRewrite: {}, backend: { host: '10.0.3.17', port: 5432 }, ...overrides };
}

function role(name: string, backendUser?: string): Pick<TenantRole, 'name' | 'backendUser'> {
  return backendUser === undefined ? { name } : { name, backendUser };
}

function params(...entries: [string, string][]): Map<string, string> {
  return new Map(entries);
}

describe('rewriteStartup: user', () => {
  test("without a template or backend user, the client's user passes unchanged", () => {
    const out = rewriteStartup({ parameters: params(['user', 'app'], ['database', 'shop']), tenant: tenant(), role: role('app') });
    assert.deepEqual(
      [...out],
      [
        ['user', 'app'],
        ['database', 'shop'],
      ],
    );
  });

  test('the template substitutes {user} and {tenant}, every occurrence', () => {
    const out = rewriteStartup({
      parameters: params(['user', 'app'], ['database', 'shop']),
      tenant: tenant({ userRewrite: { template: '{tenant}_{user}_{user}' } }),
      role: role('app'),
    });
    assert.equal(out.get('user'), 'acme_app_app');
  });

  test('a user name that looks like a placeholder is not expanded again', () => {
    const out = rewriteStartup({
      parameters: params(['user', '{tenant}']),
      tenant: tenant({ userRewrite: { template: 'u_{user}' } }),
      role: role('{tenant}'),
    });
    assert.equal(out.get('user'), 'u_{tenant}');
  });

  test("the role's backendUser takes precedence over the template", () => {
    const out = rewriteStartup({
      parameters: params(['user', 'app']),
      tenant: tenant({ userRewrite: { template: '{user}_{tenant}' } }),
      role: role('app', 'acme_owner'),
    });
    assert.equal(out.get('user'), 'acme_owner');
  });

  test(`a mapped name of exactly ${MAX_ROLE_NAME_BYTES} bytes is accepted`, () => {
    const user = 'u'.repeat(MAX_ROLE_NAME_BYTES - '_acme'.length);
    const out = rewriteStartup({
      parameters: params(['user', user]),
      tenant: tenant({ userRewrite: { template: '{user}_{tenant}' } }),
      role: role(user),
    });
    assert.equal(Buffer.byteLength(out.get('user')!), MAX_ROLE_NAME_BYTES);
  });

  test('a mapped name over 63 bytes is refused with 28000, without showing the backend name', () => {
    const user = 'u'.repeat(MAX_ROLE_NAME_BYTES - '_acme'.length + 1);
    const refusal = catchRefusal(() =>
      rewriteStartup({
        parameters: params(['user', user]),
        tenant: tenant({ userRewrite: { template: '{user}_{tenant}' } }),
        role: role(user),
      }),
    );
    assert.equal(refusal.sqlState, '28000');
    assert.equal(refusal.message, `user "${user}" cannot be mapped to a backend role: the mapped name is too long`);
    assert.equal(refusal.detail, 'The mapped role name has 64 bytes; PostgreSQL allows at most 63.');
    assert.doesNotMatch(`${refusal.message} ${refusal.detail} ${refusal.hint}`, /_acme/);
  });

  test('the limit counts UTF-8 bytes, not characters (the schema counts characters)', () => {
    const backendUser = 'é'.repeat(32); // 32 characters, 64 bytes
    const refusal = catchRefusal(() =>
      rewriteStartup({ parameters: params(['user', 'app']), tenant: tenant(), role: role('app', backendUser) }),
    );
    assert.equal(refusal.sqlState, '28000');
    assert.match(refusal.detail ?? '', /64 bytes/);
  });

  test('a mapped name with a NUL, or empty, is refused with 28000', () => {
    for (const backendUser of ['acme\0admin', '']) {
      const refusal = catchRefusal(() =>
        rewriteStartup({ parameters: params(['user', 'app']), tenant: tenant(), role: role('app', backendUser) }),
      );
      assert.equal(refusal.sqlState, '28000');
      assert.equal(refusal.message, 'user "app" cannot be mapped to a backend role: the mapped name is invalid');
    }
  });
});

describe('rewriteStartup: database', () => {
  test("the tenant's backend database replaces the client's", () => {
    const out = rewriteStartup({
      parameters: params(['user', 'app'], ['database', 'other']),
      tenant: tenant({ backend: { host: 'h', port: 1, database: 'app_db' } }),
      role: role('app'),
    });
    assert.equal(out.get('database'), 'app_db');
  });

  test("the tenant's backend database is set when the client named none", () => {
    const out = rewriteStartup({
      parameters: params(['user', 'app']),
      tenant: tenant({ backend: { host: 'h', port: 1, database: 'app_db' } }),
      role: role('app'),
    });
    assert.equal(out.get('database'), 'app_db');
  });

  test("without a backend database the client's passes through", () => {
    const out = rewriteStartup({
      parameters: params(['user', 'app'], ['database', 'shop']),
      tenant: tenant({ userRewrite: { template: '{user}_{tenant}' } }),
      role: role('app'),
    });
    assert.deepEqual(
      [...out],
      [
        ['user', 'app_acme'],
        ['database', 'shop'],
      ],
    );
  });

  test("a client that named no database gets its own user name, not the rewritten one (PostgreSQL's default)", () => {
    const out = rewriteStartup({
      parameters: params(['user', 'app']),
      tenant: tenant({ userRewrite: { template: '{user}_{tenant}' } }),
      role: role('app'),
    });
    assert.deepEqual(
      [...out],
      [
        ['user', 'app_acme'],
        ['database', 'app'],
      ],
    );
  });
});

describe('rewriteStartup: other parameters', () => {
  test("pass through in the client's order, after user and database", () => {
    const parameters = params(
      ['application_name', 'psql'],
      ['database', 'shop'],
      ['client_encoding', 'UTF8'],
      ['user', 'app'],
      ['options', '-c search_path=x'],
      ['DateStyle', 'ISO'],
    );
    const out = rewriteStartup({ parameters, tenant: tenant({ userRewrite: { template: 't_{user}' } }), role: role('app') });
    assert.deepEqual(
      [...out],
      [
        ['user', 't_app'],
        ['database', 'shop'],
        ['application_name', 'psql'],
        ['client_encoding', 'UTF8'],
        ['options', '-c search_path=x'],
        ['DateStyle', 'ISO'],
      ],
    );
  });

  test('the input map is not modified', () => {
    const parameters = params(['user', 'app'], ['replication', 'false']);
    rewriteStartup({ parameters, tenant: tenant({ userRewrite: { template: 'x_{user}' } }), role: role('app') });
    assert.deepEqual(
      [...parameters],
      [
        ['user', 'app'],
        ['replication', 'false'],
      ],
    );
  });

  test('replication=false (an ordinary session) is dropped', () => {
    for (const value of ['false', 'off', 'no', '0', 'OFF']) {
      const out = rewriteStartup({ parameters: params(['user', 'app'], ['replication', value]), tenant: tenant(), role: role('app') });
      assert.equal(out.has('replication'), false, value);
    }
  });

  test('a replication connection (allowed by the tenant before this) keeps its parameter for the backend', () => {
    for (const value of ['true', 'database', 'on', '1']) {
      const out = rewriteStartup({ parameters: params(['user', 'app'], ['replication', value]), tenant: tenant(), role: role('app') });
      assert.equal(out.get('replication'), value);
    }
  });

  test("a role that is not the client's user, or no user at all, is a caller bug", () => {
    assert.throws(
      () => rewriteStartup({ parameters: params(['user', 'app']), tenant: tenant(), role: role('other') }),
      /not the one the client named/,
    );
    assert.throws(() => rewriteStartup({ parameters: params(['database', 'x']), tenant: tenant(), role: role('app') }), /no user/);
  });
});

function catchRefusal(run: () => unknown): Refusal {
  try {
    run();
  } catch (error) {
    assert.ok(error instanceof Refusal, `expected a Refusal, got ${String(error)}`);
    return error;
  }
  assert.fail('expected a Refusal');
}
