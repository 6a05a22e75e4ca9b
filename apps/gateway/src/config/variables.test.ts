import { test } from 'node:test';
import assert from 'node:assert/strict';
import { CONFIG_VARIABLES, helpText } from './variables.ts';
import { loadConfig } from './config.ts';

/** The gateway's variables that deployments set: a public contract. */
const CONTRACT_VARIABLES = [
  'GATEWAY_LISTEN',
  'GATEWAY_WORKERS',
  'GATEWAY_TLS_CERT',
  'GATEWAY_TLS_KEY',
  'GATEWAY_SNI_SUFFIXES',
  'GATEWAY_TENANTS_FILE',
  'GATEWAY_CONTROL_PLANE_URL',
  'GATEWAY_CONTROL_PLANE_TOKEN',
  'REDIS_URL',
  'GATEWAY_BACKEND_CA',
  'GATEWAY_BACKEND_CLIENT_CERT',
  'GATEWAY_BACKEND_CLIENT_KEY',
  'GATEWAY_SECRETS_DIR',
  'GATEWAY_PROXY_PROTOCOL',
  'GATEWAY_ADMIN_LISTEN',
  'GATEWAY_DRAIN_SECONDS',
  'LOG_LEVEL',
];

/** The `--help` entry of a variable: `  NAME  (default ...)`, its description, what it expects. */
function helpEntry(name: string): string[] {
  const lines = helpText().split('\n');
  const first = lines.findIndex((l) => l.startsWith(`  ${name}  (`));
  assert.ok(first !== -1, `--help has no entry for ${name}`);
  return lines.slice(first, first + 3);
}

test('every variable of the contract is in the table', () => {
  const names = new Set<string>(CONFIG_VARIABLES.map((v) => v.name));
  for (const name of CONTRACT_VARIABLES) assert.ok(names.has(name), name);
});

test('--help lists every variable with its default, its description and the values it accepts', () => {
  for (const variable of CONFIG_VARIABLES) {
    const [header, description, expects] = helpEntry(variable.name);
    const shownDefault = variable.schema.default === undefined ? 'no default' : `default ${String(variable.schema.default)}`;
    assert.equal(header, `  ${variable.name}  (${shownDefault})`);
    assert.equal(description, `      ${variable.description}`);
    assert.equal(expects, `      Expects ${variable.expects}.`);
  }
});

test('--help mentions the OpenTelemetry variables', () => {
  assert.match(helpEntry('OTEL_*')[1], /OpenTelemetry/);
});

test('the defaults shown by --help are the ones loadConfig applies', () => {
  const config = loadConfig({ GATEWAY_ALLOW_PLAINTEXT: 'true', GATEWAY_TENANTS_FILE: 't.json' });
  assert.match(helpEntry('GATEWAY_LISTEN')[0], /\(default 0\.0\.0\.0:5432\)/);
  assert.deepEqual(config.listen, { host: '0.0.0.0', port: 5432 });
  assert.match(helpEntry('GATEWAY_ADMIN_LISTEN')[0], /\(default 127\.0\.0\.1:9187\)/);
  assert.deepEqual(config.adminListen, { host: '127.0.0.1', port: 9187 });
  assert.match(helpEntry('GATEWAY_DRAIN_SECONDS')[0], /\(default 30\)/);
  assert.equal(config.drainSeconds, 30);
  assert.match(helpEntry('GATEWAY_PROXY_PROTOCOL')[0], /\(default off\)/);
  assert.equal(config.proxyProtocol, 'off');
});

test('every variable says what it expects and is named once', () => {
  const names = CONFIG_VARIABLES.map((v) => v.name);
  assert.equal(new Set(names).size, names.length);
  for (const variable of CONFIG_VARIABLES) {
    assert.match(variable.name, /^(GATEWAY_[A-Z_]+|REDIS_URL|LOG_LEVEL)$/);
    assert.ok(variable.expects.length > 0 && variable.description.length > 0, variable.name);
    assert.doesNotMatch(variable.description, /\n/);
  }
});
