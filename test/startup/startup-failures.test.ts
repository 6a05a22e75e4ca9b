// Start-up failures a person meets first: each stops the app with one line on stderr that names
// the variable to fix, without a stack, and `npm start` / `npm run demo` pass that line through.
import { test, type TestContext } from 'node:test';
import { join } from 'node:path';
import { createTempDir, getFreePort, removeTempDir } from '@tenantgate/testing';
import { assertStoppedWith, occupiedPort, ROOT, runScript } from './run.ts';

const GATEWAY = join(ROOT, 'apps/gateway/src/main.ts');
const CONTROL_PLANE = join(ROOT, 'apps/control-plane/src/main.ts');
const ADMIN_TOKEN = 'startup-test-admin-token';

/** A gateway that would start: plaintext, an empty tenants file, no admin port. */
const GATEWAY_ENV = {
  GATEWAY_LISTEN: '127.0.0.1:0',
  GATEWAY_ALLOW_PLAINTEXT: 'true',
  GATEWAY_TENANTS_FILE: join(ROOT, 'test/startup/tenants.json'),
  GATEWAY_ADMIN_LISTEN: 'off',
};

function tempDir(t: TestContext, name: string): string {
  const dir = createTempDir(name);
  t.after(() => removeTempDir(dir));
  return dir;
}

test('gateway: a certificate file that does not exist', async (t) => {
  const dir = tempDir(t, 'startup-cert');
  const cert = join(dir, 'edge.crt');
  const result = await runScript(GATEWAY, {
    ...GATEWAY_ENV,
    GATEWAY_ALLOW_PLAINTEXT: 'false',
    GATEWAY_TLS_CERT: cert,
    GATEWAY_TLS_KEY: join(dir, 'edge.key'),
    GATEWAY_SNI_SUFFIXES: '.db.example.test',
  });
  assertStoppedWith(result, `GATEWAY_TLS_CERT: cannot read ${cert}: no such file`);
});

test('gateway: a tenants file that does not exist', async (t) => {
  const file = join(tempDir(t, 'startup-tenants'), 'tenants.json');
  const result = await runScript(GATEWAY, { ...GATEWAY_ENV, GATEWAY_TENANTS_FILE: file });
  assertStoppedWith(result, `GATEWAY_TENANTS_FILE: cannot read ${file}: no such file`);
});

test('gateway: a listen port in use', async (t) => {
  const port = await occupiedPort(t);
  const result = await runScript(GATEWAY, { ...GATEWAY_ENV, GATEWAY_LISTEN: `127.0.0.1:${port}` });
  assertStoppedWith(result, `GATEWAY_LISTEN: 127.0.0.1:${port} is already in use`);
});

test('gateway: an admin port in use', async (t) => {
  const port = await occupiedPort(t);
  const result = await runScript(GATEWAY, { ...GATEWAY_ENV, GATEWAY_ADMIN_LISTEN: `127.0.0.1:${port}` });
  assertStoppedWith(result, `GATEWAY_ADMIN_LISTEN: 127.0.0.1:${port} is already in use`);
});

test('control plane: a DATABASE_URL nothing answers at, without its password', async () => {
  const port = await getFreePort();
  const result = await runScript(CONTROL_PLANE, {
    CONTROL_PLANE_ADMIN_TOKENS: ADMIN_TOKEN,
    CONTROL_PLANE_LISTEN: '127.0.0.1:0',
    DATABASE_URL: `postgres://app:s3cret-pw@127.0.0.1:${port}/tenants`,
  });
  assertStoppedWith(result, `DATABASE_URL: cannot connect to 127.0.0.1:${port}: connection refused`);
});

test('control plane: a listen port in use', async (t) => {
  const port = await occupiedPort(t);
  const dir = tempDir(t, 'startup-cp-listen');
  const result = await runScript(CONTROL_PLANE, {
    CONTROL_PLANE_ADMIN_TOKENS: ADMIN_TOKEN,
    CONTROL_PLANE_LISTEN: `127.0.0.1:${port}`,
    CONTROL_PLANE_DATA_DIR: dir,
  });
  assertStoppedWith(result, `CONTROL_PLANE_LISTEN: 127.0.0.1:${port} is already in use`);
});

for (const tool of ['start.ts', 'demo.ts']) {
  test(`${tool === 'start.ts' ? 'npm start' : 'npm run demo'} passes the gateway's line through as it is`, async (t) => {
    const port = await occupiedPort(t);
    const dir = tempDir(t, `startup-${tool.replace('.ts', '')}`);
    const result = await runScript(join(ROOT, 'tools', tool), {
      TENANTGATE_DATA_DIR: dir,
      CONTROL_PLANE_LISTEN: `127.0.0.1:${await getFreePort()}`,
      GATEWAY_ADMIN_LISTEN: `127.0.0.1:${await getFreePort()}`,
      GATEWAY_LISTEN: `127.0.0.1:${port}`,
    });
    assertStoppedWith(result, `GATEWAY_LISTEN: 127.0.0.1:${port} is already in use`);
  });
}
