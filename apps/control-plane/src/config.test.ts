import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CONFIG_VARIABLES, ConfigError, helpText, loadConfig, loadStoreConfig, parseListen } from './config.ts';

const ADMIN = 'admin-token-0123456789';
const GATEWAY = 'gateway-token-0123456789';

async function issues(env: Record<string, string>): Promise<string[]> {
  const error = await loadConfig(env).then(
    () => assert.fail('expected a ConfigError'),
    (e: unknown) => e,
  );
  assert.ok(error instanceof ConfigError);
  return error.message.split('\n');
}

test('defaults: PGlite in .data/control-plane on 127.0.0.1:8080, no Redis, level info', async () => {
  const config = await loadConfig({ CONTROL_PLANE_ADMIN_TOKENS: ADMIN });
  assert.deepEqual(config, {
    listen: { host: '127.0.0.1', port: 8080 },
    store: { kind: 'pglite', dataDir: '.data/control-plane' },
    redisUrl: undefined,
    adminTokens: [ADMIN],
    gatewayTokens: [],
    allowLocalBackends: false,
    secretsDir: undefined,
    compute: undefined,
    issuingCa: undefined,
    logLevel: 'info',
  });
});

test('the secrets directory must be a directory', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'tg-secrets-'));
  try {
    assert.equal((await loadConfig({ CONTROL_PLANE_ADMIN_TOKENS: ADMIN, CONTROL_PLANE_SECRETS_DIR: dir })).secretsDir, dir);
    const file = join(dir, 'admin.password');
    writeFileSync(file, 'pw');
    await assert.rejects(loadConfig({ CONTROL_PLANE_ADMIN_TOKENS: ADMIN, CONTROL_PLANE_SECRETS_DIR: file }), (error: Error) => {
      assert.match(error.message, /CONTROL_PLANE_SECRETS_DIR: expected a directory; ".*admin.password" is not one/);
      return true;
    });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('the issuing CA: certificate and key together, each a path or PEM', async () => {
  const both = await loadConfig({
    CONTROL_PLANE_ADMIN_TOKENS: ADMIN,
    CONTROL_PLANE_CA_CERT: '/etc/ca.crt',
    CONTROL_PLANE_CA_KEY: '/etc/ca.key',
  });
  assert.deepEqual(both.issuingCa, { cert: { kind: 'path', path: '/etc/ca.crt' }, key: { kind: 'path', path: '/etc/ca.key' } });
  await assert.rejects(loadConfig({ CONTROL_PLANE_ADMIN_TOKENS: ADMIN, CONTROL_PLANE_CA_CERT: '/etc/ca.crt' }), (error: Error) => {
    assert.match(error.message, /CONTROL_PLANE_CA_KEY: expected it with CONTROL_PLANE_CA_CERT; not set/);
    return true;
  });
});

test('every variable is read; token lists are comma-separated and trimmed', async () => {
  const config = await loadConfig({
    CONTROL_PLANE_LISTEN: '[::1]:0',
    DATABASE_URL: 'postgres://cp:pw@db.internal:5432/cp',
    REDIS_URL: 'rediss://cache:6380',
    CONTROL_PLANE_ADMIN_TOKENS: ` ${ADMIN} , ${ADMIN}-2`,
    CONTROL_PLANE_GATEWAY_TOKENS: GATEWAY,
    LOG_LEVEL: 'debug',
    UNRELATED: 'ignored',
  });
  assert.deepEqual(config.listen, { host: '::1', port: 0 });
  assert.deepEqual(config.store, { kind: 'postgres', url: 'postgres://cp:pw@db.internal:5432/cp' });
  assert.equal(config.redisUrl, 'rediss://cache:6380');
  assert.deepEqual(config.adminTokens, [ADMIN, `${ADMIN}-2`]);
  assert.deepEqual(config.gatewayTokens, [GATEWAY]);
  assert.equal(config.logLevel, 'debug');
});

test('an admin token is required; an empty value counts as unset', async () => {
  assert.deepEqual(await issues({}), [
    'CONTROL_PLANE_ADMIN_TOKENS: is required: one or more tokens of 16 to 256 characters (A-Z a-z 0-9 - . _ ~ + / =), comma-separated',
  ]);
  assert.equal((await issues({ CONTROL_PLANE_ADMIN_TOKENS: '  ' })).length, 1);
});

test('one line per bad variable, naming it and what it expects; secrets are not echoed', async () => {
  const lines = await issues({
    CONTROL_PLANE_LISTEN: 'localhost',
    DATABASE_URL: 'mysql://root:hunter2@db/x',
    REDIS_URL: 'http://cache',
    CONTROL_PLANE_ADMIN_TOKENS: 'short',
    LOG_LEVEL: 'loud',
  });
  assert.equal(lines.length, 5);
  assert.match(lines[0], /^CONTROL_PLANE_LISTEN: expected host:port.*got "localhost"$/);
  assert.match(lines[1], /^DATABASE_URL: expected a postgres:\/\/ or postgresql:\/\/ URL$/);
  assert.match(lines[2], /^REDIS_URL: expected a redis:\/\/ or rediss:\/\/ URL$/);
  assert.match(lines[3], /^CONTROL_PLANE_ADMIN_TOKENS: expected .*token 1 is not$/);
  assert.match(lines[4], /^LOG_LEVEL: expected one of fatal, error, warn, info, debug, trace, silent, got "loud"$/);
  assert.doesNotMatch(lines.join('\n'), /hunter2|short/);
});

test('a gateway token may not also be an admin token', async () => {
  const lines = await issues({ CONTROL_PLANE_ADMIN_TOKENS: ADMIN, CONTROL_PLANE_GATEWAY_TOKENS: `${GATEWAY},${ADMIN}` });
  assert.deepEqual(lines, ['CONTROL_PLANE_GATEWAY_TOKENS: expected tokens that are not also admin tokens']);
});

test('parseListen takes host:port, [ipv6]:port and :port', () => {
  assert.deepEqual(parseListen('0.0.0.0:80'), { host: '0.0.0.0', port: 80 });
  assert.deepEqual(parseListen(':8080'), { host: '0.0.0.0', port: 8080 });
  assert.deepEqual(parseListen('[::]:8080'), { host: '::', port: 8080 });
  assert.deepEqual(parseListen('cp.internal:443'), { host: 'cp.internal', port: 443 });
  for (const bad of ['8080', 'host:', 'host:65536', '::1:80', 'a b:1']) assert.equal(typeof parseListen(bad), 'string', bad);
});

test('loadStoreConfig needs no tokens', async () => {
  assert.deepEqual(await loadStoreConfig({ CONTROL_PLANE_DATA_DIR: '/var/lib/cp' }), {
    store: { kind: 'pglite', dataDir: '/var/lib/cp' },
    logLevel: 'info',
  });
  await assert.rejects(loadStoreConfig({ DATABASE_URL: 'nope' }), /^ConfigError: DATABASE_URL: expected/);
});

test('--help lists every variable with its default', () => {
  const help = helpText();
  for (const variable of CONFIG_VARIABLES) assert.match(help, new RegExp(`^  ${variable.name}  \\(`, 'm'));
  assert.match(help, /CONTROL_PLANE_LISTEN {2}\(default 127\.0\.0\.1:8080\)/);
  assert.match(help, /CONTROL_PLANE_DATA_DIR {2}\(default \.data\/control-plane\)/);
  assert.match(help, /CONTROL_PLANE_ADMIN_TOKENS {2}\(required\)/);
});
