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

function helpLine(name: string): string {
  const line = helpText()
    .split('\n')
    .find((l) => l.trimStart().startsWith(`${name} `));
  assert.ok(line, `--help has no line for ${name}`);
  return line;
}

test('every variable of the contract is in the table', () => {
  const names = new Set<string>(CONFIG_VARIABLES.map((v) => v.name));
  for (const name of CONTRACT_VARIABLES) assert.ok(names.has(name), name);
});

test('--help lists every variable, with its default and a description, on one line', () => {
  for (const variable of CONFIG_VARIABLES) {
    const line = helpLine(variable.name);
    const shownDefault = variable.schema.default === undefined ? '-' : String(variable.schema.default);
    assert.match(line, new RegExp(`^  ${variable.name} +${shownDefault.replaceAll('.', '\\.')} +\\S`));
    assert.ok(line.endsWith(variable.description), line);
  }
});

test('--help mentions the OpenTelemetry variables', () => {
  assert.match(helpLine('OTEL_*'), /OpenTelemetry/);
});

test('the defaults shown by --help are the ones loadConfig applies', () => {
  const config = loadConfig({ GATEWAY_ALLOW_PLAINTEXT: 'true', GATEWAY_TENANTS_FILE: 't.json' });
  assert.match(helpLine('GATEWAY_LISTEN'), /0\.0\.0\.0:5432/);
  assert.deepEqual(config.listen, { host: '0.0.0.0', port: 5432 });
  assert.match(helpLine('GATEWAY_ADMIN_LISTEN'), /127\.0\.0\.1:9187/);
  assert.deepEqual(config.adminListen, { host: '127.0.0.1', port: 9187 });
  assert.match(helpLine('GATEWAY_DRAIN_SECONDS'), / 30 /);
  assert.equal(config.drainSeconds, 30);
  assert.match(helpLine('GATEWAY_PROXY_PROTOCOL'), / off /);
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
