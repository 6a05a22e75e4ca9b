import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { loadConfig } from '../config/index.ts';
import { connectionLogger, createLogger, REDACTED } from './logger.ts';

const KEY_PEM = '-----BEGIN PRIVATE KEY-----\nS0VZLU1BVEVSSUFM\n-----END PRIVATE KEY-----';

/** A stream that keeps what pino writes, and the JSON lines parsed from it. */
function sink(): { stream: Writable; text: () => string; lines: () => Record<string, unknown>[] } {
  const chunks: string[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _encoding, callback) {
      chunks.push(chunk.toString());
      callback();
    },
  });
  const text = () => chunks.join('');
  const lines = () =>
    text()
      .split('\n')
      .filter((line) => line !== '')
      .map((line) => JSON.parse(line) as Record<string, unknown>);
  return { stream, text, lines };
}

test('lines are JSON with the level name, an ISO time and the message', () => {
  const out = sink();
  createLogger({ level: 'info', destination: out.stream }).info({ phase: 'tls' }, 'handshake done');
  const [line] = out.lines();
  assert.equal(line.level, 'info');
  assert.equal(line.msg, 'handshake done');
  assert.equal(line.phase, 'tls');
  assert.ok(!Number.isNaN(Date.parse(String(line.time))) && String(line.time).endsWith('Z'));
});

test('lines below the level are not written', () => {
  const out = sink();
  const log = createLogger({ level: 'warn', destination: out.stream });
  log.info('hidden');
  log.warn('shown');
  assert.deepEqual(
    out.lines().map((l) => l.msg),
    ['shown'],
  );
});

test('the configuration logged at start-up hides its secrets and keeps the rest', () => {
  const out = sink();
  const config = loadConfig({
    GATEWAY_TLS_CERT: '/etc/server.crt',
    GATEWAY_TLS_KEY: KEY_PEM,
    GATEWAY_SNI_SUFFIXES: '.db.example.com',
    GATEWAY_CONTROL_PLANE_URL: 'https://cp.internal',
    GATEWAY_CONTROL_PLANE_TOKEN: 'cp-token-do-not-log',
    REDIS_URL: 'rediss://:redis-password@cache.internal:6379',
    GATEWAY_BACKEND_CLIENT_CERT: '/etc/client.crt',
    GATEWAY_BACKEND_CLIENT_KEY: KEY_PEM,
  });
  createLogger({ level: 'info', destination: out.stream }).info({ config }, 'gateway configured');
  for (const secret of ['cp-token-do-not-log', 'redis-password', 'S0VZLU1BVEVSSUFM']) {
    assert.ok(!out.text().includes(secret), `${secret} leaked into the log`);
  }
  const logged = out.lines()[0].config as typeof config & Record<string, unknown>;
  assert.deepEqual(logged.tenantSource, { kind: 'control-plane', url: 'https://cp.internal/', token: REDACTED });
  assert.equal(logged.redisUrl, REDACTED);
  assert.deepEqual(logged.tls?.certificates[0].key, { kind: 'pem', pem: REDACTED });
  assert.deepEqual(logged.tls?.certificates[0].cert, { kind: 'path', path: '/etc/server.crt' });
  assert.deepEqual(logged.backend.client?.key, { kind: 'pem', pem: REDACTED });
});

test('passwords, tokens, SCRAM secrets, keys and authorization headers are redacted', () => {
  const out = sink();
  const log = createLogger({ level: 'info', destination: out.stream });
  log.info({ password: 'pw-1', token: 'tok-1', key: 'cancel-key-1' }, 'top level');
  log.info({ request: { headers: { authorization: 'Bearer tok-2', accept: 'application/json' } } }, 'request');
  log.info({ headers: { authorization: 'Bearer tok-3' } }, 'headers');
  log.info({ route: { id: 'acme', roles: [{ name: 'app', scramSecret: 'SCRAM-SHA-256$4096:c2FsdA==$a:b' }] } }, 'route');
  log.info({ role: { name: 'app', password: 'pw-2' }, tls: { key: 'pem-2' } }, 'nested');
  const text = out.text();
  for (const secret of ['pw-1', 'tok-1', 'cancel-key-1', 'tok-2', 'tok-3', 'SCRAM-SHA-256', 'pw-2', 'pem-2']) {
    assert.ok(!text.includes(secret), `${secret} leaked into the log`);
  }
  const [, request, , route] = out.lines();
  assert.deepEqual(request.request, { headers: { authorization: REDACTED, accept: 'application/json' } });
  assert.deepEqual(route.route, { id: 'acme', roles: [{ name: 'app', scramSecret: REDACTED }] });
});

test('a connection logger puts conn, client and tenant on every line', () => {
  const out = sink();
  const root = createLogger({ level: 'info', destination: out.stream });
  const log = connectionLogger(root, { conn: 'c-17', client: '203.0.113.9:50123', tenant: 'acme' });
  log.info({ phase: 'auth', outcome: 'refused' }, 'password authentication failed');
  const [line] = out.lines();
  assert.equal(line.conn, 'c-17');
  assert.equal(line.client, '203.0.113.9:50123');
  assert.equal(line.tenant, 'acme');
  assert.equal(line.phase, 'auth');
});

test('the tenant joins the bindings once it is known', () => {
  const out = sink();
  const log = connectionLogger(createLogger({ level: 'info', destination: out.stream }), { conn: 1, client: '[::1]:5000' });
  log.info('accepted');
  log.setBindings({ tenant: 'acme' });
  log.info('resolved');
  const [accepted, resolved] = out.lines();
  assert.equal('tenant' in accepted, false);
  assert.equal(accepted.conn, 1);
  assert.equal(resolved.tenant, 'acme');
});

test('secrets in connection logger bindings are redacted too', () => {
  const out = sink();
  const log = connectionLogger(createLogger({ level: 'info', destination: out.stream }), { conn: 2, client: '10.0.0.1:1' });
  log.child({ headers: { authorization: 'Basic c2VjcmV0' } }).info('child');
  assert.ok(!out.text().includes('c2VjcmV0'));
});
