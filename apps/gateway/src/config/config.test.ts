import { test } from 'node:test';
import assert from 'node:assert/strict';
import { availableParallelism } from 'node:os';
import { ConfigError, loadConfig, parseListenAddress, type GatewayConfig } from './config.ts';

const CERT_PEM = '-----BEGIN CERTIFICATE-----\nMIIBszCCAVmgAwIBAgIUQ2VydA==\n-----END CERTIFICATE-----\n';
const CERT2_PEM = '-----BEGIN CERTIFICATE-----\nMIIBtDCCAVqgAwIBAgIUQ2VydDI=\n-----END CERTIFICATE-----\n';
const KEY_PEM = '-----BEGIN PRIVATE KEY-----\nMIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgS2V5\n-----END PRIVATE KEY-----\n';
const KEY2_PEM = '-----BEGIN EC PRIVATE KEY-----\nMHcCAQEEIEtleTI=\n-----END EC PRIVATE KEY-----\n';
const ENCRYPTED_KEY_PEM = '-----BEGIN ENCRYPTED PRIVATE KEY-----\nMIIFHDBOBgkqhkiG9w0BBQ0wQTApBgkq\n-----END ENCRYPTED PRIVATE KEY-----\n';

/** A production-shaped environment: TLS from files, the control plane. */
const production = {
  GATEWAY_TLS_CERT: '/etc/tenantgate/server.crt',
  GATEWAY_TLS_KEY: '/etc/tenantgate/server.key',
  GATEWAY_SNI_SUFFIXES: '.db.example.com',
  GATEWAY_CONTROL_PLANE_URL: 'https://control-plane.internal:8443',
  GATEWAY_CONTROL_PLANE_TOKEN: 'gw-token-123',
};

/** The smallest development environment: plaintext, a static tenants file. */
const development = { GATEWAY_ALLOW_PLAINTEXT: 'true', GATEWAY_TENANTS_FILE: './tenants.json' };

function configError(env: NodeJS.ProcessEnv): ConfigError {
  try {
    loadConfig(env);
  } catch (error) {
    assert.ok(error instanceof ConfigError, `expected a ConfigError, got ${String(error)}`);
    return error;
  }
  assert.fail('expected loadConfig to throw');
}

/** The error's message, asserted to be exactly one line. */
function oneLine(env: NodeJS.ProcessEnv): string {
  const { message, issues } = configError(env);
  assert.equal(issues.length, 1, message);
  assert.doesNotMatch(message, /\n/);
  return message;
}

test('a development environment gets the documented defaults', () => {
  const expected: GatewayConfig = {
    listen: { host: '0.0.0.0', port: 5432 },
    workers: 1,
    tls: undefined,
    tlsPolicy: { minVersion: 'TLSv1.2', ciphers: undefined },
    allowPlaintext: true,
    sniSuffixes: [],
    tenantSource: { kind: 'file', path: './tenants.json' },
    redisUrl: undefined,
    backend: { ca: undefined, client: undefined, minVersion: 'TLSv1.2' },
    secretsDir: undefined,
    proxyProtocol: 'off',
    adminListen: { host: '127.0.0.1', port: 9187 },
    drainSeconds: 30,
    handshakeTimeoutMs: 10_000,
    authTimeoutMs: 30_000,
    wakeTimeoutMs: 30_000,
    backendConnectTimeoutMs: 10_000,
    maxPendingConnections: 1000,
    maxPendingPerAddress: 64,
    connectsPerSecondPerAddress: 100,
    fleetLeaseMs: 30_000,
    proxyTrustedCidrs: undefined,
    adminTokens: [],
    logLevel: 'info',
  };
  assert.deepEqual(loadConfig(development), expected);
});

test('TLS policy: minimum versions for each leg and a client-leg cipher list, checked at start', () => {
  const config = loadConfig({
    ...production,
    GATEWAY_TLS_MIN_VERSION: 'TLSv1.3',
    GATEWAY_TLS_CIPHERS: 'ECDHE+AESGCM',
    GATEWAY_BACKEND_TLS_MIN_VERSION: 'TLSv1.3',
  });
  assert.deepEqual(config.tlsPolicy, { minVersion: 'TLSv1.3', ciphers: 'ECDHE+AESGCM' });
  assert.equal(config.backend.minVersion, 'TLSv1.3');
  assert.match(oneLine({ ...production, GATEWAY_TLS_MIN_VERSION: 'TLSv1.1' }), /^GATEWAY_TLS_MIN_VERSION: .*TLSv1\.2, TLSv1\.3/);
  assert.match(oneLine({ ...production, GATEWAY_BACKEND_TLS_MIN_VERSION: 'SSLv3' }), /^GATEWAY_BACKEND_TLS_MIN_VERSION: /);
  assert.match(oneLine({ ...production, GATEWAY_TLS_CIPHERS: 'NO-SUCH-CIPHER' }), /^GATEWAY_TLS_CIPHERS: expected an OpenSSL cipher list/);
});

test('a production environment parses into values, not strings', () => {
  const config = loadConfig({
    ...production,
    GATEWAY_LISTEN: '[::]:6432',
    GATEWAY_WORKERS: '4',
    REDIS_URL: 'rediss://:secret@cache.internal:6379',
    GATEWAY_BACKEND_CA: '/etc/tenantgate/backend-ca.pem',
    GATEWAY_BACKEND_CLIENT_CERT: '/etc/tenantgate/client.crt',
    GATEWAY_BACKEND_CLIENT_KEY: '/etc/tenantgate/client.key',
    GATEWAY_SECRETS_DIR: '/run/secrets',
    GATEWAY_PROXY_PROTOCOL: 'required',
    GATEWAY_ADMIN_LISTEN: '0.0.0.0:9187',
    GATEWAY_DRAIN_SECONDS: '120',
    GATEWAY_HANDSHAKE_TIMEOUT_MS: '5000',
    GATEWAY_AUTH_TIMEOUT_MS: '15000',
    GATEWAY_BACKEND_CONNECT_TIMEOUT_MS: '3000',
    GATEWAY_MAX_PENDING_CONNECTIONS: '250',
    LOG_LEVEL: 'debug',
  });
  assert.deepEqual(config.listen, { host: '::', port: 6432 });
  assert.equal(config.workers, 4);
  assert.deepEqual(config.tls, {
    certificates: [
      {
        suffixes: ['.db.example.com'],
        cert: { kind: 'path', path: '/etc/tenantgate/server.crt' },
        key: { kind: 'path', path: '/etc/tenantgate/server.key' },
      },
    ],
  });
  assert.equal(config.allowPlaintext, false);
  assert.deepEqual(config.tenantSource, {
    kind: 'control-plane',
    url: 'https://control-plane.internal:8443/',
    token: 'gw-token-123',
  });
  assert.equal(config.redisUrl, 'rediss://:secret@cache.internal:6379');
  assert.deepEqual(config.backend, {
    ca: { kind: 'path', path: '/etc/tenantgate/backend-ca.pem' },
    client: {
      cert: { kind: 'path', path: '/etc/tenantgate/client.crt' },
      key: { kind: 'path', path: '/etc/tenantgate/client.key' },
    },
    minVersion: 'TLSv1.2',
  });
  assert.equal(config.secretsDir, '/run/secrets');
  assert.equal(config.proxyProtocol, 'required');
  assert.deepEqual(config.adminListen, { host: '0.0.0.0', port: 9187 });
  assert.equal(config.drainSeconds, 120);
  assert.equal(config.handshakeTimeoutMs, 5000);
  assert.equal(config.authTimeoutMs, 15_000);
  assert.equal(config.backendConnectTimeoutMs, 3000);
  assert.equal(config.maxPendingConnections, 250);
  assert.equal(config.logLevel, 'debug');
});

test('GATEWAY_WORKERS=auto means one worker per available CPU', () => {
  assert.equal(loadConfig({ ...development, GATEWAY_WORKERS: 'auto' }).workers, availableParallelism());
});

test('listen addresses: host:port, [ipv6]:port, :port; port 0 picks a free port', () => {
  assert.deepEqual(parseListenAddress('127.0.0.1:6432'), { host: '127.0.0.1', port: 6432 });
  assert.deepEqual(parseListenAddress('[::]:5432'), { host: '::', port: 5432 });
  assert.deepEqual(parseListenAddress('[::1]:5432'), { host: '::1', port: 5432 });
  assert.deepEqual(parseListenAddress(':5432'), { host: '0.0.0.0', port: 5432 });
  assert.deepEqual(parseListenAddress('localhost:0'), { host: 'localhost', port: 0 });
  for (const bad of ['5432', '::1:5432', '[zz]:5432', 'host:65536', 'host:', 'a b:1', '[::1]']) {
    assert.equal(parseListenAddress(bad), undefined, bad);
  }
});

test('the example of the brief: a bad enum names the variable, the choices and the value', () => {
  assert.equal(
    oneLine({ ...development, GATEWAY_PROXY_PROTOCOL: 'maybe' }),
    'GATEWAY_PROXY_PROTOCOL: expected one of off, optional, required; got "maybe"',
  );
});

test('every bad value stops start-up with one line naming the variable and what it expects', () => {
  const cases: [variable: string, value: string, expected: string][] = [
    ['GATEWAY_LISTEN', '5432', 'host:port, [ipv6]:port or :port'],
    ['GATEWAY_LISTEN', '10.0.0.1:70000', 'a port from 0 to 65535'],
    ['GATEWAY_WORKERS', '0', 'an integer from 1 to 999, or auto'],
    ['GATEWAY_WORKERS', 'many', 'an integer from 1 to 999, or auto'],
    ['GATEWAY_ALLOW_PLAINTEXT', 'yes', 'true or false'],
    ['GATEWAY_SNI_SUFFIXES', 'db..example.com', 'DNS suffixes'],
    ['GATEWAY_SNI_SUFFIXES', '.db_1.example.com', 'DNS suffixes'],
    ['GATEWAY_SNI_SUFFIXES', '.db.example.com,DB.example.com.', 'without repeats'],
    ['GATEWAY_CONTROL_PLANE_URL', 'ftp://cp.internal', 'an http:// or https:// URL'],
    ['GATEWAY_BACKEND_CA', KEY_PEM, 'a CA certificate file path or PEM'],
    ['GATEWAY_ADMIN_LISTEN', 'localhost', 'or empty or off to disable'],
    ['GATEWAY_DRAIN_SECONDS', '-1', 'seconds, an integer from 0 to 86400'],
    ['GATEWAY_DRAIN_SECONDS', 'soon', 'seconds, an integer from 0 to 86400'],
    ['GATEWAY_HANDSHAKE_TIMEOUT_MS', '0', 'milliseconds'],
    ['GATEWAY_AUTH_TIMEOUT_MS', '1.5', 'milliseconds'],
    ['GATEWAY_BACKEND_CONNECT_TIMEOUT_MS', 'fast', 'milliseconds'],
    ['GATEWAY_MAX_PENDING_CONNECTIONS', '0', 'an integer from 1 to 1000000'],
    ['LOG_LEVEL', 'loud', 'one of fatal, error, warn, info, debug, trace, silent'],
  ];
  for (const [variable, value, expected] of cases) {
    const env = variable === 'GATEWAY_CONTROL_PLANE_URL' ? { ...production } : { ...development };
    const line = oneLine({ ...env, [variable]: value });
    assert.ok(line.startsWith(`${variable}: expected `), line);
    assert.ok(line.includes(expected), `${line} should say ${expected}`);
    if (!value.includes('\n')) assert.ok(line.endsWith(`got ${JSON.stringify(value)}`), line);
  }
});

test('a PEM value that is not the right kind of PEM is refused', () => {
  const cases: [variable: string, value: string][] = [
    ['GATEWAY_TLS_CERT', '-----BEGIN CERTIFICATE-----\nMIIB\n'],
    ['GATEWAY_TLS_CERT', KEY_PEM],
    ['GATEWAY_TLS_KEY', CERT_PEM],
    ['GATEWAY_TLS_KEY', ENCRYPTED_KEY_PEM],
    [
      'GATEWAY_TLS_KEY',
      '-----BEGIN RSA PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\nDEK-Info: AES-128-CBC,00\n\nAA==\n-----END RSA PRIVATE KEY-----\n',
    ],
  ];
  for (const [variable, value] of cases) {
    const line = oneLine({ ...production, [variable]: value });
    assert.ok(line.startsWith(`${variable}: expected `), line);
  }
});

test('values that may be secrets are never echoed in the error line', () => {
  const redis = oneLine({ ...development, REDIS_URL: 'http://:hunter2@cache.internal' });
  assert.equal(redis, 'REDIS_URL: expected a redis:// or rediss:// URL');
  const key = oneLine({ ...production, GATEWAY_TLS_KEY: '-----BEGIN PRIVATE KEY-----\nc2VjcmV0\n' });
  assert.doesNotMatch(key, /c2VjcmV0|got/);
  const clientKey = oneLine({ ...production, GATEWAY_BACKEND_CLIENT_CERT: CERT_PEM, GATEWAY_BACKEND_CLIENT_KEY: 'top\nsecret' });
  assert.equal(clientKey, 'GATEWAY_BACKEND_CLIENT_KEY: expected a private key file path or PEM');
});

test('several bad variables give one line each, in the order of --help', () => {
  const { message, issues } = configError({
    LOG_LEVEL: 'loud',
    GATEWAY_WORKERS: 'x',
    GATEWAY_PROXY_PROTOCOL: 'maybe',
    GATEWAY_LISTEN: 'nowhere',
    GATEWAY_TENANTS_FILE: 'a.json',
    GATEWAY_ALLOW_PLAINTEXT: 'true',
  });
  assert.deepEqual(
    issues.map((i) => i.variable),
    ['GATEWAY_LISTEN', 'GATEWAY_WORKERS', 'GATEWAY_PROXY_PROTOCOL', 'LOG_LEVEL'],
  );
  assert.equal(message.split('\n').length, 4);
});

test('a long value is shortened in the error line', () => {
  const line = oneLine({ ...development, GATEWAY_LISTEN: 'x'.repeat(500) });
  assert.ok(line.length < 200, line);
});

test('an unknown GATEWAY_* variable is reported as a probable typo', () => {
  assert.match(oneLine({ ...development, GATEWAY_PROXY_PROTOCAL: 'required' }), /^GATEWAY_PROXY_PROTOCAL: .*typo/);
});

test('exactly one of GATEWAY_TENANTS_FILE and GATEWAY_CONTROL_PLANE_URL', () => {
  const neither = oneLine({ GATEWAY_ALLOW_PLAINTEXT: 'true' });
  assert.match(neither, /^GATEWAY_TENANTS_FILE, GATEWAY_CONTROL_PLANE_URL: expected exactly one of them .*; neither is set$/);
  const both = oneLine({ ...production, GATEWAY_TENANTS_FILE: 'tenants.json' });
  assert.match(both, /^GATEWAY_TENANTS_FILE, GATEWAY_CONTROL_PLANE_URL: expected exactly one of them .*; both are set$/);
});

test('GATEWAY_CONTROL_PLANE_TOKEN is required with the control plane URL', () => {
  const { GATEWAY_CONTROL_PLANE_TOKEN: _token, ...withoutToken } = production;
  assert.match(oneLine(withoutToken), /^GATEWAY_CONTROL_PLANE_TOKEN: expected .*required with GATEWAY_CONTROL_PLANE_URL; not set$/);
});

test('the control plane URL keeps its base path for relative route requests', () => {
  const config = loadConfig({ ...production, GATEWAY_CONTROL_PLANE_URL: 'http://cp.internal:8080/api' });
  assert.equal(config.tenantSource.kind === 'control-plane' && config.tenantSource.url, 'http://cp.internal:8080/api/');
});

test('TLS is required unless GATEWAY_ALLOW_PLAINTEXT=true', () => {
  assert.match(oneLine({ GATEWAY_TENANTS_FILE: 't.json' }), /^GATEWAY_TLS_CERT: expected .*unless GATEWAY_ALLOW_PLAINTEXT=true; not set$/);
  assert.match(oneLine({ ...production, GATEWAY_TLS_KEY: '' }), /^GATEWAY_TLS_KEY: expected private keys for GATEWAY_TLS_CERT; not set$/);
  assert.match(oneLine({ ...production, GATEWAY_TLS_CERT: '' }), /^GATEWAY_TLS_CERT: expected certificates for GATEWAY_TLS_KEY; not set$/);
});

test('GATEWAY_SNI_SUFFIXES is required with TLS, even in plaintext mode', () => {
  const { GATEWAY_SNI_SUFFIXES: _suffixes, ...withoutSuffixes } = production;
  assert.match(oneLine(withoutSuffixes), /^GATEWAY_SNI_SUFFIXES: expected .*required with GATEWAY_TLS_CERT; not set$/);
  assert.match(oneLine({ ...withoutSuffixes, GATEWAY_ALLOW_PLAINTEXT: 'true' }), /^GATEWAY_SNI_SUFFIXES: /);
});

test('plaintext mode may still serve TLS', () => {
  const config = loadConfig({ ...production, GATEWAY_ALLOW_PLAINTEXT: 'true' });
  assert.equal(config.allowPlaintext, true);
  assert.equal(config.tls?.certificates.length, 1);
});

test('suffixes are normalised: lower case, one leading dot, no trailing dot', () => {
  const config = loadConfig({ ...production, GATEWAY_SNI_SUFFIXES: 'DB.Example.com., .db.example.net ,localhost' });
  assert.deepEqual(config.sniSuffixes, ['.db.example.com', '.db.example.net', '.localhost']);
});

test('one certificate serves every suffix', () => {
  const config = loadConfig({ ...production, GATEWAY_SNI_SUFFIXES: '.db.example.com,.db.example.net' });
  assert.deepEqual(
    config.tls?.certificates.map((c) => c.suffixes),
    [['.db.example.com', '.db.example.net']],
  );
});

test('several certificates pair with the suffixes by position', () => {
  const config = loadConfig({
    ...production,
    GATEWAY_SNI_SUFFIXES: '.db.example.com, .db.example.net',
    GATEWAY_TLS_CERT: 'com.crt, net.crt',
    GATEWAY_TLS_KEY: 'com.key,net.key',
  });
  assert.deepEqual(config.tls, {
    certificates: [
      { suffixes: ['.db.example.com'], cert: { kind: 'path', path: 'com.crt' }, key: { kind: 'path', path: 'com.key' } },
      { suffixes: ['.db.example.net'], cert: { kind: 'path', path: 'net.crt' }, key: { kind: 'path', path: 'net.key' } },
    ],
  });
});

test('certificates, keys and suffixes that do not pair up are refused', () => {
  const twoCerts = { ...production, GATEWAY_TLS_CERT: 'a.crt,b.crt', GATEWAY_TLS_KEY: 'a.key,b.key' };
  assert.equal(
    oneLine({ ...twoCerts, GATEWAY_SNI_SUFFIXES: '.a.example,.b.example,.c.example' }),
    'GATEWAY_TLS_CERT: expected 1 certificate for every suffix, or 3 (one per GATEWAY_SNI_SUFFIXES entry); got 2',
  );
  assert.equal(
    oneLine({ ...twoCerts, GATEWAY_TLS_KEY: 'a.key', GATEWAY_SNI_SUFFIXES: '.a.example,.b.example' }),
    'GATEWAY_TLS_KEY: expected 2 private key(s), one per GATEWAY_TLS_CERT entry; got 1',
  );
  assert.match(oneLine({ ...production, GATEWAY_TLS_CERT: 'a.crt,,b.crt' }), /^GATEWAY_TLS_CERT: expected /);
});

test('PEM text is accepted in place of a path, as ECS injects secrets', () => {
  const config = loadConfig({ ...production, GATEWAY_TLS_CERT: CERT_PEM, GATEWAY_TLS_KEY: KEY_PEM });
  assert.deepEqual(config.tls?.certificates[0].cert, { kind: 'pem', pem: CERT_PEM.trim() });
  assert.deepEqual(config.tls?.certificates[0].key, { kind: 'pem', pem: KEY_PEM.trim() });
});

test('PEM on one line with \\n escapes is turned back into lines', () => {
  const escaped = KEY_PEM.trim().replaceAll('\n', '\\n');
  const config = loadConfig({ ...production, GATEWAY_TLS_KEY: escaped });
  assert.deepEqual(config.tls?.certificates[0].key, { kind: 'pem', pem: KEY_PEM.trim() });
});

test('several PEM entries split at the comma before each -----BEGIN, a chain stays whole', () => {
  const chain = `${CERT_PEM}${CERT2_PEM}`;
  const config = loadConfig({
    ...production,
    GATEWAY_SNI_SUFFIXES: '.a.example,.b.example',
    GATEWAY_TLS_CERT: `${chain},${CERT2_PEM}`,
    GATEWAY_TLS_KEY: `${KEY_PEM}, ${KEY2_PEM}`,
  });
  const [first, second] = config.tls?.certificates ?? [];
  assert.deepEqual(first.cert, { kind: 'pem', pem: chain.trim() });
  assert.deepEqual(second.cert, { kind: 'pem', pem: CERT2_PEM.trim() });
  assert.deepEqual(second.key, { kind: 'pem', pem: KEY2_PEM.trim() });
});

test('a certificate may come from a file and its key from PEM', () => {
  const config = loadConfig({
    ...production,
    GATEWAY_BACKEND_CA: CERT_PEM + CERT2_PEM,
    GATEWAY_BACKEND_CLIENT_CERT: '/etc/client.crt',
    GATEWAY_BACKEND_CLIENT_KEY: KEY_PEM,
  });
  assert.deepEqual(config.backend, {
    ca: { kind: 'pem', pem: (CERT_PEM + CERT2_PEM).trim() },
    client: { cert: { kind: 'path', path: '/etc/client.crt' }, key: { kind: 'pem', pem: KEY_PEM.trim() } },
    minVersion: 'TLSv1.2',
  });
});

test('the backend client certificate and key go together', () => {
  assert.match(oneLine({ ...production, GATEWAY_BACKEND_CLIENT_CERT: 'c.crt' }), /^GATEWAY_BACKEND_CLIENT_KEY: expected .*; not set$/);
  assert.match(oneLine({ ...production, GATEWAY_BACKEND_CLIENT_KEY: 'c.key' }), /^GATEWAY_BACKEND_CLIENT_CERT: expected .*; not set$/);
});

test('empty values count as unset, surrounding blanks are trimmed', () => {
  const config = loadConfig({
    ...development,
    GATEWAY_LISTEN: '',
    GATEWAY_WORKERS: ' 2 ',
    GATEWAY_CONTROL_PLANE_URL: '',
    REDIS_URL: '  ',
    LOG_LEVEL: 'warn\n',
  });
  assert.deepEqual(config.listen, { host: '0.0.0.0', port: 5432 });
  assert.equal(config.workers, 2);
  assert.equal(config.redisUrl, undefined);
  assert.equal(config.logLevel, 'warn');
});

test('an empty GATEWAY_ADMIN_LISTEN, or off, disables the admin server', () => {
  assert.equal(loadConfig({ ...development, GATEWAY_ADMIN_LISTEN: '' }).adminListen, undefined);
  assert.equal(loadConfig({ ...development, GATEWAY_ADMIN_LISTEN: 'off' }).adminListen, undefined);
  assert.deepEqual(loadConfig({ ...development, GATEWAY_ADMIN_LISTEN: ':0' }).adminListen, { host: '0.0.0.0', port: 0 });
});

test('only the env given is read, never process.env', (t) => {
  process.env.GATEWAY_WORKERS = 'not a number';
  t.after(() => delete process.env.GATEWAY_WORKERS);
  assert.equal(loadConfig(development).workers, 1);
});

test('the error has a stable code and structured issues', () => {
  const error = configError({ ...development, GATEWAY_WORKERS: '0' });
  assert.equal(error.code, 'TG_ERR_CONFIG');
  assert.equal(error.name, 'ConfigError');
  assert.deepEqual(error.issues, [{ variable: 'GATEWAY_WORKERS', message: 'expected an integer from 1 to 999, or auto; got "0"' }]);
});

test('GATEWAY_PROXY_TRUSTED_CIDRS: CIDR blocks of either family, only with a PROXY mode that reads headers', () => {
  const behindBalancer = { ...development, GATEWAY_PROXY_PROTOCOL: 'required' };
  assert.deepEqual(loadConfig({ ...behindBalancer, GATEWAY_PROXY_TRUSTED_CIDRS: '10.0.0.0/16, fd00::/8' }).proxyTrustedCidrs, [
    '10.0.0.0/16',
    'fd00::/8',
  ]);
  assert.match(
    oneLine({ ...behindBalancer, GATEWAY_PROXY_TRUSTED_CIDRS: '10.0.0.0/16,10.1.0.0' }),
    /^GATEWAY_PROXY_TRUSTED_CIDRS: .*"10.1.0.0" is not one/,
  );
  assert.match(
    oneLine({ ...development, GATEWAY_PROXY_TRUSTED_CIDRS: '10.0.0.0/16' }),
    /^GATEWAY_PROXY_TRUSTED_CIDRS: .*GATEWAY_PROXY_PROTOCOL/,
  );
});

test('GATEWAY_ADMIN_TOKENS: bearer tokens of 16 characters or more, never echoed', () => {
  assert.deepEqual(loadConfig({ ...development, GATEWAY_ADMIN_TOKENS: 'admin-token-0123456789, second-token-0123456789' }).adminTokens, [
    'admin-token-0123456789',
    'second-token-0123456789',
  ]);
  const line = oneLine({ ...development, GATEWAY_ADMIN_TOKENS: 'admin-token-0123456789,short' });
  assert.match(line, /^GATEWAY_ADMIN_TOKENS: .*token 2 is not/);
  assert.doesNotMatch(line, /short|admin-token/);
});
