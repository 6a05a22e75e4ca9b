// The static tenants file, read from real files in a temporary directory: loading, errors that
// name the file and the place, hashed passwords, reloads that swap whole tables or change nothing.
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test, type TestContext } from 'node:test';
import fc from 'fast-check';
import { ScramClientExchange, ScramServerExchange, parseScramSecret } from '@tenantgate/wire';
import { TenantsFileDirectory, loadTenantsFile, locateJsonError } from './tenants-file.ts';
import { TenantsFileError } from '../errors.ts';

const SECRET = `SCRAM-SHA-256$4096:${Buffer.alloc(16, 1).toString('base64')}$${Buffer.alloc(32, 2).toString('base64')}:${Buffer.alloc(32, 3).toString('base64')}`;
const PASSWORD = 'correct horse battery staple';

function tenant(id: string, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return { id, backend: { host: '10.0.3.17' }, roles: [{ name: 'app', scramSecret: SECRET }], ...extra };
}

async function tempFile(t: TestContext, content: unknown): Promise<{ path: string; write(content: unknown): Promise<void> }> {
  const dir = await mkdtemp(join(tmpdir(), 'tenantgate-tenants-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const path = join(dir, 'tenants.json');
  const write = (next: unknown) => writeFile(path, typeof next === 'string' ? next : JSON.stringify(next, null, 2));
  await write(content);
  return { path, write };
}

async function loadError(path: string): Promise<TenantsFileError> {
  try {
    await loadTenantsFile(path);
  } catch (error) {
    assert.ok(error instanceof TenantsFileError, String(error));
    assert.equal(error.code, 'TG_ERR_TENANTS_FILE');
    assert.equal(error.path, path);
    assert.ok(error.message.startsWith(`tenants file ${path}: `), error.message);
    return error;
  }
  assert.fail('expected a TenantsFileError');
}

test('a valid file loads every tenant, with the defaults of the schema', async (t) => {
  const file = await tempFile(t, { tenants: [tenant('acme'), tenant('beta', { status: 'suspended' })] });
  const tenants = await loadTenantsFile(file.path);
  assert.deepEqual([...tenants.keys()], ['acme', 'beta']);
  assert.deepEqual(tenants.get('acme'), {
    id: 'acme',
    status: 'active',
    backend: { host: '10.0.3.17', port: 5432 },
    authMode: 'gateway',
    userRewrite: {},
    roles: [{ name: 'app', scramSecret: SECRET }],
    allowedCidrs: ['0.0.0.0/0', '::/0'],
    limits: { maxConnections: 100, connectsPerSecond: 50 },
    replication: 'none',
  });
  assert.equal(tenants.get('beta')?.status, 'suspended');
  assert.ok(Object.isFrozen(tenants.get('acme')) && Object.isFrozen(tenants.get('acme')?.roles[0]), 'shared, so frozen');
});

test('an empty list of tenants is valid', async (t) => {
  const file = await tempFile(t, { tenants: [] });
  assert.equal((await loadTenantsFile(file.path)).size, 0);
});

test('a password becomes a SCRAM secret that verifies it, and is not kept', async (t) => {
  const file = await tempFile(t, { tenants: [tenant('acme', { roles: [{ name: 'app', password: PASSWORD, backendUser: 'acme_app' }] })] });
  const role = (await loadTenantsFile(file.path)).get('acme')?.roles[0];
  assert.ok(role !== undefined);
  assert.deepEqual(Object.keys(role).sort(), ['backendUser', 'name', 'scramSecret']);
  assert.doesNotMatch(JSON.stringify(role), new RegExp(PASSWORD));
  const secret = parseScramSecret(role.scramSecret);
  assert.equal(secret.iterations, 4096);

  // A full SCRAM exchange: the password logs in against the stored secret, a wrong one does not.
  const login = async (password: string): Promise<void> => {
    const server = new ScramServerExchange({ secret, role: 'acme/app', mockKey: Buffer.alloc(16, 7) });
    const client = new ScramClientExchange({ password, channelBinding: 'disable' });
    const first = client.start(server.mechanisms());
    const final = await client.handleServerFirst(server.handleClientFirst(first.mechanism, first.message));
    client.handleServerFinal(server.handleClientFinal(final));
  };
  await login(PASSWORD);
  await assert.rejects(login('wrong'), { name: 'ScramAuthError' });
});

test('a custom password hash is used when given', async (t) => {
  const file = await tempFile(t, { tenants: [tenant('acme', { roles: [{ name: 'app', password: 'x' }] })] });
  const tenants = await loadTenantsFile(file.path, { hashPassword: async () => SECRET });
  assert.equal(tenants.get('acme')?.roles[0].scramSecret, SECRET);
});

test('bad JSON: the error names the file, the line and the column, and quotes nothing of it', async (t) => {
  const cases: [string, RegExp][] = [
    ['{\n  "tenants": [\n    { "id": "acme", }\n  ]\n}', /line 3, column 21: expected a property name/],
    ['{\n  "tenants": [\n    { "id": "acme" "backend": {} }\n  ]\n}', /line 3, column 20: expected ',' or '}'/],
    ['{ "tenants": [ { "roles": [{ "password": "hunter2\n" }] } ] }', /line 1, column 50: control character/],
    ['{ "tenants": [ ', /line 1, column 16: unexpected end of the file/],
    ['', /line 1, column 1: unexpected end of the file/],
    ['{ "tenants": [] } x', /line 1, column 19: unexpected text after the end/],
    ["{ 'tenants': [] }", /line 1, column 3: expected a property name in double quotes/],
  ];
  const file = await tempFile(t, '');
  for (const [text, expected] of cases) {
    await file.write(text);
    const error = await loadError(file.path);
    assert.match(error.message, /not valid JSON/);
    assert.match(error.message, expected);
    assert.doesNotMatch(error.message, /hunter2|acme/, 'nothing of the file is quoted');
    assert.equal(error.cause, undefined, "JSON.parse's error (which quotes the file) is not attached");
  }
});

test('a byte order mark at the start is accepted', async (t) => {
  const file = await tempFile(t, `\ufeff${JSON.stringify({ tenants: [tenant('acme')] })}`);
  assert.equal((await loadTenantsFile(file.path)).size, 1);
});

test('an invalid file: each error names the field by its JSON pointer', async (t) => {
  const cases: [unknown, string, RegExp][] = [
    [{}, '/tenants', /is required/],
    [{ tenants: {} }, '/tenants', /must be array/],
    [{ tenants: [], extra: 1 }, '/extra', /not a known field/],
    [{ tenants: [tenant('acme', { backend: { host: 'h', port: 70000 } })] }, '/tenants/0/backend/port', /<= 65535/],
    [{ tenants: [tenant('acme'), tenant('Bad')] }, '/tenants/1/id', /a-z, 0-9/],
    [{ tenants: [tenant('acme'), tenant('acme')] }, '/tenants/1/id', /duplicate tenant id "acme"/],
    [
      { tenants: [tenant('acme', { roles: [{ name: 'app', password: 'p', scramSecret: SECRET }] })] },
      '/tenants/0/roles/0',
      /exactly one of "password" and "scramSecret"/,
    ],
    [{ tenants: [tenant('acme', { colour: 'blue' })] }, '/tenants/0/colour', /not a known field/],
    [{ tenants: [tenant('acme', { allowedCidrs: ['10.0.0.0/33'] })] }, '/tenants/0/allowedCidrs/0', /not a CIDR block/],
  ];
  const file = await tempFile(t, '');
  for (const [content, path, message] of cases) {
    await file.write(content);
    const error = await loadError(file.path);
    const issue = error.issues.find((i) => i.path === path);
    assert.ok(issue !== undefined, `${path} in ${JSON.stringify(error.issues)}`);
    assert.match(issue.message, message);
    assert.ok(error.message.includes(`${path}: `), error.message);
  }
});

test('a file that cannot be read says so', async (t) => {
  const file = await tempFile(t, '');
  const missing = join(file.path, '..', 'missing.json');
  const error = await loadError(missing);
  assert.match(error.message, /cannot read it \(ENOENT\)/);
});

test('the source resolves known tenants and says unknown for the rest', async (t) => {
  const file = await tempFile(t, { tenants: [tenant('acme')] });
  const source = await TenantsFileDirectory.open(file.path);
  t.after(() => source.close());
  const found = await source.resolve('acme');
  assert.equal(found.kind, 'found');
  assert.equal(found.kind === 'found' && found.tenant.id, 'acme');
  assert.equal(found.kind === 'found' && found.version, undefined, 'a file keeps no versions');
  assert.deepEqual(await source.resolve('nobody'), { kind: 'unknown' });
  assert.deepEqual(await source.resolve('__proto__'), { kind: 'unknown' });
  assert.equal(source.size, 1);
  const aborted = AbortSignal.abort(new Error('client gone'));
  await assert.rejects(source.resolve('acme', aborted), /client gone/);
});

test('open() on a bad file fails with the reason', async (t) => {
  const file = await tempFile(t, { tenants: [tenant('acme', { status: 'gone' })] });
  await assert.rejects(TenantsFileDirectory.open(file.path), (error: unknown) => {
    assert.ok(error instanceof TenantsFileError);
    assert.match(error.message, /\/tenants\/0\/status: must be one of active, suspended, maintenance/);
    return true;
  });
});

test('reload swaps the whole table at once', async (t) => {
  const file = await tempFile(t, { tenants: [tenant('acme'), tenant('beta')] });
  const source = await TenantsFileDirectory.open(file.path);
  t.after(() => source.close());
  await file.write({
    tenants: [tenant('gamma', { roles: [{ name: 'app', password: PASSWORD }] }), tenant('beta', { status: 'maintenance' })],
  });

  const reloading = source.reload();
  // Until the new file is read and hashed, the old table answers, whole.
  assert.equal((await source.resolve('acme')).kind, 'found');
  assert.equal((await source.resolve('gamma')).kind, 'unknown');
  const beta = await source.resolve('beta');
  assert.equal(beta.kind === 'found' && beta.tenant.status, 'active');

  assert.deepEqual(await reloading, { ok: true, count: 2 });
  assert.equal((await source.resolve('acme')).kind, 'unknown');
  assert.equal((await source.resolve('gamma')).kind, 'found');
  const newBeta = await source.resolve('beta');
  assert.equal(newBeta.kind === 'found' && newBeta.tenant.status, 'maintenance');
  assert.equal(beta.kind === 'found' && beta.tenant.status, 'active', 'a tenant already handed out does not change');
});

test('a failed reload keeps the tenants in force and reports why', async (t) => {
  const file = await tempFile(t, { tenants: [tenant('acme')] });
  const source = await TenantsFileDirectory.open(file.path);
  t.after(() => source.close());
  for (const bad of ['{ "tenants": [', { tenants: [tenant('acme', { limits: { maxConnections: -1 } })] }]) {
    await file.write(bad);
    const result = await source.reload();
    assert.equal(result.ok, false);
    assert.ok(!result.ok && result.error instanceof TenantsFileError);
    assert.ok(!result.ok && result.error.message.includes(file.path));
    assert.equal((await source.resolve('acme')).kind, 'found');
    assert.equal(source.size, 1);
  }
  await rm(file.path);
  const missing = await source.reload();
  assert.ok(!missing.ok && /ENOENT/.test(missing.error.message));
  assert.equal((await source.resolve('acme')).kind, 'found');
});

test('reloads run one after another: the last one called wins', async (t) => {
  const file = await tempFile(t, { tenants: [tenant('v1')] });
  let slow = true;
  const source = await TenantsFileDirectory.open(file.path, {
    // The first reload's hashing is slow; the second must not be overtaken by it.
    hashPassword: async () => {
      if (slow) await new Promise((resolve) => setTimeout(resolve, 100));
      return SECRET;
    },
  });
  t.after(() => source.close());
  await file.write({ tenants: [tenant('v2', { roles: [{ name: 'app', password: 'p' }] })] });
  const first = source.reload();
  await new Promise((resolve) => setTimeout(resolve, 20)); // the first has read the file
  slow = false;
  await file.write({ tenants: [tenant('v3')] });
  const second = source.reload();
  assert.deepEqual(await Promise.all([first, second]), [
    { ok: true, count: 1 },
    { ok: true, count: 1 },
  ]);
  assert.equal((await source.resolve('v3')).kind, 'found');
  assert.equal((await source.resolve('v2')).kind, 'unknown');
});

test('after close(), resolve() fails', async (t) => {
  const file = await tempFile(t, { tenants: [tenant('acme')] });
  const source = await TenantsFileDirectory.open(file.path);
  await source.close();
  await assert.rejects(source.resolve('acme'), /closed/);
});

test('the locator finds a fault exactly when JSON.parse does', () => {
  const texts = fc.oneof(
    fc.json(),
    fc
      .json()
      .chain((json) =>
        fc
          .tuple(fc.nat({ max: json.length }), fc.constantFrom('', ',', '}', ']', '"', ':', '\n', '\\', '0', 'x', '\u0001'))
          .map(([at, insert]) => json.slice(0, at) + insert + json.slice(at + (insert === '' ? 1 : 0))),
      ),
  );
  fc.assert(
    fc.property(texts, (text) => {
      let parses = true;
      try {
        JSON.parse(text);
      } catch {
        parses = false;
      }
      assert.equal(locateJsonError(text) === undefined, parses, JSON.stringify(text));
    }),
    { numRuns: 2000 },
  );
});
