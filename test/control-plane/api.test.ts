// The control plane over real HTTP, the same suite on both stores: an embedded PGlite (temp data
// directory) and a real PostgreSQL. Redis is a real redis-server, killed and restarted for the
// outage test. Nothing is mocked.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { Redis } from 'ioredis';
import { decodeInvalidation, INVALIDATION_CHANNEL, routeFloorKey, routeKey, type InvalidationMessage } from '@tenantgate/tenancy';
import { createScramSecret, parseScramSecret } from '@tenantgate/wire';
import { createPostgresDatabase, ErrorCode, migrate, MIGRATIONS, SCRAM_ITERATIONS } from '@tenantgate/control-plane';
import { createCertificateAuthority, startRedis, type RedisServer } from '@tenantgate/testing';
import {
  call,
  createStoreHome,
  eventually,
  GATEWAY_TOKEN,
  startApp,
  tenantBody,
  type CallOptions,
  type Reply,
  type RunningApp,
  type StoreHome,
  type StoreKind,
} from './harness.ts';

for (const kind of ['pglite', 'postgres'] as const satisfies readonly StoreKind[]) {
  describe(`control plane API on ${kind}`, () => {
    let home: StoreHome;
    let redisServer: RedisServer;
    let running: RunningApp;
    let subscriber: Redis;
    let inspector: Redis;
    const messages: InvalidationMessage[] = [];
    const api = (method: string, path: string, options?: CallOptions): Promise<Reply> => call(running.url, method, path, options);

    before(async () => {
      [home, redisServer] = await Promise.all([createStoreHome(kind), startRedis()]);
      running = await startApp(await home.open(), { redisUrl: redisServer.url });
      // Reconnects fast after the outage test restarts Redis; errors while it is down are expected.
      const fast = { retryStrategy: () => 20, lazyConnect: true };
      subscriber = new Redis(redisServer.url, fast).on('error', () => {});
      inspector = new Redis(redisServer.url, fast).on('error', () => {});
      await Promise.all([subscriber.connect(), inspector.connect()]);
      subscriber.on('message', (_channel, raw: string) => {
        const message = decodeInvalidation(raw);
        if (message !== null) messages.push(message);
      });
      await subscriber.subscribe(INVALIDATION_CHANNEL);
    });

    after(async () => {
      subscriber?.disconnect();
      inspector?.disconnect();
      await running?.close();
      await Promise.all([home?.remove(), redisServer?.stop()]);
    });

    const create = async (id: string, extra: Record<string, unknown> = {}) => {
      const reply = await api('POST', '/v1/tenants', { json: tenantBody(id, extra) });
      assert.equal(reply.status, 201, JSON.stringify(reply.body));
      return reply;
    };
    const invalidationOf = (id: string, version: number | null) =>
      eventually(`the invalidation of ${id} at ${version}`, () =>
        messages.find((m) => m.id === id && m.version === version) !== undefined ? true : undefined,
      );

    test('creates a tenant with defaults, reads it back with its ETag', async () => {
      const created = await create('acme', { roles: [{ name: 'app', password: 'app-secret', backendUser: 'acme_app' }] });
      assert.equal(created.headers.get('location'), '/v1/tenants/acme');
      const { version, createdAt, updatedAt, ...record } = created.body;
      assert.deepEqual(record, {
        id: 'acme',
        status: 'active',
        backend: { host: '10.0.3.17', port: 5432 },
        authMode: 'gateway',
        userRewrite: {},
        roles: [{ name: 'app', backendUser: 'acme_app' }],
        allowedCidrs: ['0.0.0.0/0', '::/0'],
        limits: { maxConnections: 100, connectsPerSecond: 50 },
        replication: 'none',
      });
      assert.ok(Number.isSafeInteger(version) && version > 0);
      assert.equal(created.headers.get('etag'), `"${version}"`);
      assert.equal(createdAt, updatedAt);
      const read = await api('GET', '/v1/tenants/acme');
      assert.equal(read.status, 200);
      assert.deepEqual(read.body, created.body);
      assert.equal(read.headers.get('etag'), `"${version}"`);
    });

    test('lists tenants in id order, a page at a time', async () => {
      for (const id of ['page-c', 'page-a', 'page-e', 'page-b', 'page-d']) await create(id);
      const seen: string[] = [];
      let cursor: string | null = null;
      let pages = 0;
      do {
        const query: string = cursor === null ? '?limit=2' : `?limit=2&cursor=${cursor}`;
        const page = await api('GET', `/v1/tenants${query}`);
        assert.equal(page.status, 200);
        assert.ok(page.body.items.length <= 2);
        for (const item of page.body.items)
          assert.equal(
            item.roles.some((r: object) => 'scramSecret' in r),
            false,
          );
        seen.push(...page.body.items.map((t: { id: string }) => t.id));
        cursor = page.body.nextCursor;
        pages += 1;
      } while (cursor !== null);
      const pageIds = seen.filter((id) => id.startsWith('page-'));
      assert.deepEqual(pageIds, ['page-a', 'page-b', 'page-c', 'page-d', 'page-e']);
      assert.deepEqual(seen, [...seen].sort());
      assert.equal(pages, Math.ceil(seen.length / 2));
      const all = await api('GET', '/v1/tenants');
      assert.equal(all.body.items.length, seen.length);
      assert.equal(all.body.nextCursor, null);
    });

    test('a password is stored only as a SCRAM secret, which verifies; only /v1/routes shows it', async () => {
      const password = 'correct-horse-battery-staple';
      await create('pw', { roles: [{ name: 'owner', password }] });
      await api('PUT', '/v1/tenants/pw/roles/reader', { json: { password: `${password}-2` } });
      // Nothing the store holds contains either password: tenants, roles, outbox.
      for (const table of ['tenants', 'tenant_roles', 'invalidation_outbox']) {
        const rows = await running.database.query<{ text: string }>(`SELECT t::text AS text FROM ${table} t`);
        for (const row of rows) assert.doesNotMatch(row.text, /correct-horse/, table);
      }
      const stored = await running.database.query<{ name: string; scram_secret: string }>(
        "SELECT name, scram_secret FROM tenant_roles WHERE tenant_id = 'pw' ORDER BY name",
      );
      assert.deepEqual(
        stored.map((r) => r.name),
        ['owner', 'reader'],
      );
      for (const [row, pw] of [
        [stored[0], password],
        [stored[1], `${password}-2`],
      ] as const) {
        const secret = parseScramSecret(row.scram_secret);
        assert.ok(secret.iterations >= SCRAM_ITERATIONS);
        assert.equal(await createScramSecret(pw, { salt: secret.salt, iterations: secret.iterations }), row.scram_secret);
      }
      assert.notDeepEqual(parseScramSecret(stored[0].scram_secret).salt, parseScramSecret(stored[1].scram_secret).salt);

      const admin = await api('GET', '/v1/tenants/pw');
      assert.deepEqual(admin.body.roles, [{ name: 'owner' }, { name: 'reader' }]);
      const route = await api('GET', '/v1/routes/pw', { token: GATEWAY_TOKEN });
      assert.equal(route.status, 200);
      assert.deepEqual(
        route.body.roles.map((r: { name: string; scramSecret: string }) => [r.name, r.scramSecret]),
        stored.map((r) => [r.name, r.scram_secret]),
      );
      assert.equal(route.body.version, admin.body.version);
      assert.equal(route.headers.get('etag'), `"${admin.body.version}"`);
      assert.ok(route.body.createdAt && route.body.updatedAt);
    });

    test('a role may be given by its SCRAM secret; PUT replaces, DELETE removes', async () => {
      await create('rolling');
      const secret = await createScramSecret('pw', { iterations: 4096 });
      const added = await api('PUT', '/v1/tenants/rolling/roles/app', { json: { scramSecret: secret, backendUser: 'roles_app' } });
      assert.equal(added.status, 201);
      assert.deepEqual(added.body.roles, [{ name: 'app', backendUser: 'roles_app' }]);
      const replaced = await api('PUT', '/v1/tenants/rolling/roles/app', { json: { password: 'new-password' } });
      assert.equal(replaced.status, 200);
      assert.deepEqual(replaced.body.roles, [{ name: 'app' }]);
      assert.ok(replaced.body.version > added.body.version);
      const route = await api('GET', '/v1/routes/rolling');
      assert.notEqual(route.body.roles[0].scramSecret, secret);
      const removed = await api('DELETE', '/v1/tenants/rolling/roles/app');
      assert.equal(removed.status, 200);
      assert.deepEqual(removed.body.roles, []);
      const again = await api('DELETE', '/v1/tenants/rolling/roles/app');
      assert.equal(again.status, 404);
      assert.equal(again.body.code, ErrorCode.NotFound);
      const unknownTenant = await api('PUT', '/v1/tenants/nobody/roles/app', { json: { password: 'x' } });
      assert.equal(unknownTenant.status, 404);
    });

    test('PATCH merges into the record, validates the result and bumps the version', async () => {
      const created = await create('patchy', { backend: { host: 'db.internal', port: 5432, database: 'app' } });
      const patched = await api('PATCH', '/v1/tenants/patchy', {
        json: { status: 'suspended', backend: { port: 6432, database: null }, limits: { maxConnections: 5 } },
      });
      assert.equal(patched.status, 200, JSON.stringify(patched.body));
      assert.equal(patched.body.status, 'suspended');
      assert.deepEqual(patched.body.backend, { host: 'db.internal', port: 6432 });
      assert.deepEqual(patched.body.limits, { maxConnections: 5, connectsPerSecond: 50 });
      assert.ok(patched.body.version > created.body.version);
      assert.equal(patched.body.createdAt, created.body.createdAt);
      assert.ok(patched.body.updatedAt >= created.body.updatedAt);
      const merged = await api('PATCH', '/v1/tenants/patchy', {
        json: { userRewrite: { template: '{user}_{tenant}' } },
        headers: { 'content-type': 'application/merge-patch+json' },
      });
      assert.equal(merged.status, 200);
      assert.deepEqual(merged.body.userRewrite, { template: '{user}_{tenant}' });

      const badPort = await api('PATCH', '/v1/tenants/patchy', { json: { backend: { port: 0 }, status: 'active' } });
      assert.equal(badPort.status, 400);
      assert.deepEqual(badPort.body.details, { in: 'body', issues: [{ path: '/backend/port', message: 'must be >= 1' }] });
      const badCidr = await api('PATCH', '/v1/tenants/patchy', { json: { allowedCidrs: ['10.0.0.0/8', '10.0.0.0/33'] } });
      assert.equal(badCidr.status, 400);
      assert.deepEqual(
        badCidr.body.details.issues.map((i: { path: string }) => i.path),
        ['/allowedCidrs/1'],
      );
      // A failed write leaves nothing: same version, nothing queued.
      const after = await api('GET', '/v1/tenants/patchy');
      assert.equal(after.body.version, merged.body.version);
      assert.equal((await api('PATCH', '/v1/tenants/patchy', { json: { id: 'other' } })).body.details.issues[0].path, '/id');
      assert.equal((await api('PATCH', '/v1/tenants/patchy', { json: {} })).status, 400);
      assert.equal((await api('PATCH', '/v1/tenants/nobody', { json: { status: 'active' } })).status, 404);
    });

    test('replication: none by default, set at creation or by PATCH, served in the route; a record stored before it existed reads as none', async () => {
      const created = await create('replicating');
      assert.equal(created.body.replication, 'none');
      const logical = await api('PATCH', '/v1/tenants/replicating', { json: { replication: 'logical' } });
      assert.equal(logical.status, 200);
      assert.equal(logical.body.replication, 'logical');
      assert.equal((await api('GET', '/v1/routes/replicating', { token: GATEWAY_TOKEN })).body.replication, 'logical');
      const bad = await api('PATCH', '/v1/tenants/replicating', { json: { replication: 'all' } });
      assert.equal(bad.status, 400);
      assert.equal(bad.body.details.issues[0].path, '/replication');
      assert.equal((await create('physical-at-birth', { replication: 'physical' })).body.replication, 'physical');
      await running.database.query("UPDATE tenants SET record = record - 'replication' WHERE id = 'replicating'");
      assert.equal((await api('GET', '/v1/tenants/replicating')).body.replication, 'none');
    });

    test('certificate mode: clientCaCertificate is required with it, served in the route, and removed by a PATCH with null', async () => {
      const { certPem } = await createCertificateAuthority({ commonName: 'client CA' });
      const missing = await api('POST', '/v1/tenants', { json: tenantBody('certless', { authMode: 'certificate' }) });
      assert.equal(missing.status, 400);
      assert.equal(missing.body.details.issues[0].path, '/clientCaCertificate');
      const created = await create('certful', { authMode: 'certificate', clientCaCertificate: certPem });
      assert.equal(created.body.clientCaCertificate, certPem);
      assert.equal((await api('GET', '/v1/routes/certful', { token: GATEWAY_TOKEN })).body.clientCaCertificate, certPem);
      const back = await api('PATCH', '/v1/tenants/certful', { json: { authMode: 'gateway', clientCaCertificate: null } });
      assert.equal(back.status, 200, JSON.stringify(back.body));
      assert.equal('clientCaCertificate' in back.body, false);

      // A role's own mode: refused while the tenant has no client CA, kept and served once it has.
      const refused = await api('PUT', '/v1/tenants/certful/roles/app', { json: { password: 'pw', authMode: 'certificate' } });
      assert.equal(refused.status, 400);
      assert.deepEqual(refused.body.details.issues, [
        { path: '/authMode', message: '"certificate" needs the tenant\'s clientCaCertificate' },
      ]);
      assert.equal((await api('PATCH', '/v1/tenants/certful', { json: { clientCaCertificate: certPem } })).status, 200);
      const role = await api('PUT', '/v1/tenants/certful/roles/app', { json: { password: 'pw', authMode: 'certificate' } });
      assert.equal(role.status, 201, JSON.stringify(role.body));
      assert.deepEqual(role.body.roles, [{ name: 'app', authMode: 'certificate' }]);
      assert.equal((await api('GET', '/v1/routes/certful', { token: GATEWAY_TOKEN })).body.roles[0].authMode, 'certificate');
    });

    test('If-Match: a stale version gets 409 and changes nothing; the current one applies', async () => {
      const created = await create('guarded');
      const v1 = created.headers.get('etag') as string;
      const first = await api('PATCH', '/v1/tenants/guarded', { json: { status: 'maintenance' }, headers: { 'if-match': v1 } });
      assert.equal(first.status, 200);
      const v2 = first.headers.get('etag') as string;
      assert.notEqual(v2, v1);
      for (const [method, path, json] of [
        ['PATCH', '/v1/tenants/guarded', { status: 'active' }],
        ['PUT', '/v1/tenants/guarded/roles/app', { password: 'pw' }],
        ['DELETE', '/v1/tenants/guarded', undefined],
      ] as const) {
        const stale = await api(method, path, { json, headers: { 'if-match': v1 } });
        assert.equal(stale.status, 409, `${method} ${path}`);
        assert.equal(stale.body.code, ErrorCode.VersionConflict);
        assert.equal(`"${stale.body.details.version}"`, v2);
      }
      const unchanged = await api('GET', '/v1/tenants/guarded');
      assert.equal(unchanged.headers.get('etag'), v2);
      assert.equal(unchanged.body.status, 'maintenance');
      const badHeader = await api('PATCH', '/v1/tenants/guarded', { json: { status: 'active' }, headers: { 'if-match': 'yesterday' } });
      assert.equal(badHeader.status, 400);
      assert.deepEqual(badHeader.body.details, {
        in: 'headers',
        issues: [{ path: '/if-match', message: badHeader.body.details.issues[0].message }],
      });
      const deleted = await api('DELETE', '/v1/tenants/guarded', { headers: { 'if-match': v2 } });
      assert.equal(deleted.status, 204);
    });

    test('versions increase with every write, across tenants, and are never reused after a delete', async () => {
      const versions: number[] = [];
      versions.push((await create('seq-a')).body.version);
      versions.push((await create('seq-b')).body.version);
      versions.push((await api('PATCH', '/v1/tenants/seq-a', { json: { status: 'suspended' } })).body.version);
      versions.push((await api('PUT', '/v1/tenants/seq-b/roles/r', { json: { password: 'pw' } })).body.version);
      versions.push((await api('DELETE', '/v1/tenants/seq-b/roles/r')).body.version);
      assert.equal((await api('DELETE', '/v1/tenants/seq-a')).status, 204);
      assert.equal((await api('GET', '/v1/tenants/seq-a')).status, 404);
      assert.equal((await api('GET', '/v1/routes/seq-a')).status, 404);
      versions.push((await create('seq-a')).body.version);
      for (let i = 1; i < versions.length; i++) assert.ok(versions[i] > versions[i - 1], `${versions}`);
    });

    test('tokens: none or unknown is 401, a gateway token only reads routes (403 elsewhere)', async () => {
      await create('guests');
      const attempts: Record<string, string>[] = [
        {},
        { authorization: 'Bearer wrong-token-0123456789abcdef' },
        { authorization: `Basic ${GATEWAY_TOKEN}` },
      ];
      for (const headers of attempts) {
        const reply = await api('GET', '/v1/routes/guests', { token: null, headers });
        assert.equal(reply.status, 401);
        assert.equal(reply.body.code, ErrorCode.Unauthorized);
        assert.equal(reply.headers.get('www-authenticate'), 'Bearer');
      }
      assert.equal((await api('GET', '/v1/tenants', { token: null })).status, 401);
      assert.equal((await api('GET', '/v1/routes/guests', { token: GATEWAY_TOKEN })).status, 200);
      for (const [method, path, json] of [
        ['GET', '/v1/tenants', undefined],
        ['GET', '/v1/tenants/guests', undefined],
        ['POST', '/v1/tenants', tenantBody('intruder')],
        ['PATCH', '/v1/tenants/guests', { status: 'suspended' }],
        ['PUT', '/v1/tenants/guests/roles/x', { password: 'x' }],
        ['DELETE', '/v1/tenants/guests/roles/x', undefined],
        ['DELETE', '/v1/tenants/guests', undefined],
      ] as const) {
        const reply = await api(method, path, { token: GATEWAY_TOKEN, json });
        assert.equal(reply.status, 403, `${method} ${path}`);
        assert.equal(reply.body.code, ErrorCode.Forbidden);
      }
      assert.equal((await api('GET', '/v1/tenants/intruder')).status, 404);
      for (const path of ['/healthz', '/readyz', '/metrics', '/docs/json']) {
        assert.equal((await api('GET', path, { token: null })).status, 200, path);
      }
    });

    test('errors: one shape for every status, naming the failing field', async () => {
      await create('dupe');
      const expect = (reply: Reply, status: number, code: string) => {
        assert.equal(reply.status, status, JSON.stringify(reply.body));
        assert.deepEqual(Object.keys(reply.body).sort(), ['code', 'details', 'message']);
        assert.equal(reply.body.code, code);
        assert.equal(typeof reply.body.message, 'string');
        return reply.body.details;
      };
      const invalid = expect(
        await api('POST', '/v1/tenants', { json: { id: 'Bad Id', backend: { host: 'h', port: 70000 }, colour: 'red' } }),
        400,
        ErrorCode.Validation,
      );
      assert.equal(invalid.in, 'body');
      assert.deepEqual(invalid.issues.map((i: { path: string }) => i.path).sort(), ['/backend/port', '/colour', '/id']);
      const missing = expect(await api('POST', '/v1/tenants', { json: { id: 'nobackend' } }), 400, ErrorCode.Validation);
      assert.deepEqual(missing.issues, [{ path: '/backend', message: 'is required' }]);
      const role = expect(
        await api('PUT', '/v1/tenants/dupe/roles/app', { json: { password: 'a', scramSecret: 'b' } }),
        400,
        ErrorCode.Validation,
      );
      assert.deepEqual(role.issues, [{ path: '', message: 'give exactly one of "password" and "scramSecret"' }]);
      expect(await api('PUT', '/v1/tenants/dupe/roles/app', { json: {} }), 400, ErrorCode.Validation);
      assert.deepEqual(expect(await api('GET', '/v1/tenants/NOT_AN_ID'), 400, ErrorCode.Validation).issues[0].path, '/id');
      assert.deepEqual(expect(await api('GET', '/v1/tenants?limit=1000'), 400, ErrorCode.Validation).issues[0].path, '/limit');
      assert.deepEqual(expect(await api('GET', '/v1/tenants?cursor=nope'), 400, ErrorCode.Validation).issues[0].path, '/cursor');
      expect(
        await api('POST', '/v1/tenants', { raw: '{"id":', headers: { 'content-type': 'application/json' } }),
        400,
        ErrorCode.MalformedBody,
      );
      expect(await api('GET', '/v1/routes/BAD!', { token: null }), 401, ErrorCode.Unauthorized);
      expect(await api('GET', '/v1/tenants/dupe', { token: GATEWAY_TOKEN }), 403, ErrorCode.Forbidden);
      expect(await api('GET', '/v1/tenants/ghost'), 404, ErrorCode.TenantNotFound);
      expect(await api('GET', '/v1/routes/ghost', { token: GATEWAY_TOKEN }), 404, ErrorCode.TenantNotFound);
      expect(await api('GET', '/v2/whatever'), 404, ErrorCode.NotFound);
      expect(await api('DELETE', '/v1/tenants/ghost'), 404, ErrorCode.TenantNotFound);
      const duplicate = tenantBody('dupe', { roles: [{ name: 'sneaky', password: 'pw' }], status: 'suspended' });
      expect(await api('POST', '/v1/tenants', { json: duplicate }), 409, ErrorCode.TenantExists);
      const large = JSON.stringify(tenantBody('large', { userRewrite: { template: 'x'.repeat(2 * 1024 * 1024) } }));
      const tooLarge = expect(
        await api('POST', '/v1/tenants', { raw: large, headers: { 'content-type': 'application/json' } }),
        413,
        ErrorCode.BodyTooLarge,
      );
      assert.equal(tooLarge.limit, 1024 * 1024);
      expect(
        await api('POST', '/v1/tenants', { raw: 'id=x', headers: { 'content-type': 'application/x-www-form-urlencoded' } }),
        415,
        ErrorCode.UnsupportedMediaType,
      );
      expect(
        await api('PATCH', '/v1/tenants/dupe', { raw: 'status: active', headers: { 'content-type': 'text/plain' } }),
        415,
        ErrorCode.UnsupportedMediaType,
      );
      // A PATCH nested 5,000 levels deep is refused with 400, not a stack overflow's 500.
      const deep = `{"backend":${'{"a":'.repeat(5000)}1${'}'.repeat(5000)}}`;
      const tooDeep = expect(
        await api('PATCH', '/v1/tenants/dupe', { raw: deep, headers: { 'content-type': 'application/merge-patch+json' } }),
        400,
        ErrorCode.Validation,
      );
      assert.deepEqual(tooDeep.issues, [{ path: '', message: 'is nested deeper than 32 levels' }]);
      // Records the gateway could not use are refused by name.
      const unusable = expect(
        await api('POST', '/v1/tenants', {
          json: tenantBody('unusable', { userRewrite: { template: 'everyone' }, authMode: 'passthrough' }),
        }),
        400,
        ErrorCode.Validation,
      );
      assert.deepEqual(unusable.issues.map((i: { path: string }) => i.path).sort(), ['/backend/database', '/userRewrite/template']);
      // A backend on this machine or a cloud metadata address, unless CONTROL_PLANE_ALLOW_LOCAL_BACKENDS.
      const metadata = tenantBody('metadata', { backend: { host: '169.254.169.254' } });
      const local = expect(await api('POST', '/v1/tenants', { json: metadata }), 400, ErrorCode.Validation);
      assert.equal(local.issues[0].path, '/backend/host');
      assert.match(local.issues[0].message, /CONTROL_PLANE_ALLOW_LOCAL_BACKENDS/);
      const moved = { backend: { host: 'localhost' } };
      expect(
        await api('PATCH', '/v1/tenants/dupe', { json: moved, headers: { 'content-type': 'application/merge-patch+json' } }),
        400,
        ErrorCode.Validation,
      );
      // Nothing of the rejected requests was written.
      assert.equal((await api('GET', '/v1/tenants/large')).status, 404);
      const dupe = (await api('GET', '/v1/tenants/dupe')).body;
      assert.deepEqual([dupe.status, dupe.roles], ['active', []]);
    });

    test('every committed write reaches Redis: floor key raised, route key deleted, message published', async () => {
      const created = await create('cached');
      await invalidationOf('cached', created.body.version);
      assert.equal(await inspector.get(routeFloorKey('cached')), String(created.body.version));
      await inspector.set(routeKey('cached'), 'a stale route');
      const patched = await api('PATCH', '/v1/tenants/cached', { json: { status: 'suspended' } });
      await invalidationOf('cached', patched.body.version);
      assert.equal(await inspector.get(routeFloorKey('cached')), String(patched.body.version));
      assert.equal(await inspector.exists(routeKey('cached')), 0);
      await inspector.set(routeKey('cached'), 'a stale route');
      assert.equal((await api('DELETE', '/v1/tenants/cached')).status, 204);
      await invalidationOf('cached', null);
      const floor = Number(await inspector.get(routeFloorKey('cached')));
      assert.ok(floor > patched.body.version, 'the delete raises the floor above every version the tenant had');
      assert.equal(await inspector.exists(routeKey('cached')), 0);
      const recreated = await create('cached');
      assert.ok(recreated.body.version > floor, 'a re-created tenant starts above the floor');
      await eventually('the outbox to drain', async () =>
        (await api('GET', '/readyz')).body.pendingInvalidations === 0 ? true : undefined,
      );
    });

    test('/metrics has the request histogram by route template and the tenant gauge', async () => {
      await api('GET', '/v1/routes/ghost', { token: GATEWAY_TOKEN });
      const reply = await api('GET', '/metrics', { token: null });
      assert.equal(reply.status, 200);
      assert.match(reply.headers.get('content-type') ?? '', /^text\/plain/);
      const text: string = reply.body;
      assert.match(text, /^# TYPE tenantgate_http_request_duration_seconds histogram$/m);
      assert.match(text, /^tenantgate_http_request_duration_seconds_count\{method="GET",route="\/v1\/routes\/:id",status="404"\} \d+$/m);
      assert.match(
        text,
        /^tenantgate_http_request_duration_seconds_bucket\{le="0.005",method="POST",route="\/v1\/tenants",status="201"\} \d+$/m,
      );
      assert.doesNotMatch(text, /route="\/v1\/routes\/ghost"/);
      const count = (await api('GET', '/v1/tenants?limit=100')).body.items.length;
      assert.match(text, new RegExp(`^tenantgate_tenants ${count}$`, 'm'));
      assert.match(text, /^tenantgate_invalidations_published_total \d+$/m);
    });

    test('/docs serves swagger-ui and /docs/json an OpenAPI document of every path', async () => {
      const ui = await api('GET', '/docs', { token: null });
      assert.equal(ui.status, 200);
      const doc = (await api('GET', '/docs/json', { token: null })).body;
      assert.match(doc.openapi, /^3\./);
      const paths: Record<string, Record<string, unknown>> = doc.paths;
      assert.deepEqual(Object.keys(paths['/v1/tenants']).sort(), ['get', 'post']);
      assert.deepEqual(Object.keys(paths['/v1/tenants/{id}']).sort(), ['delete', 'get', 'patch']);
      assert.deepEqual(Object.keys(paths['/v1/tenants/{id}/roles/{role}']).sort(), ['delete', 'put']);
      assert.deepEqual(Object.keys(paths['/v1/routes/{id}']), ['get']);
      for (const path of ['/healthz', '/readyz', '/metrics']) assert.ok(paths[path], path);
      // The request schema is the tenant record's schema from libs/tenancy.
      assert.deepEqual(doc.components.schemas.TenantInput.required, ['id', 'backend']);
      assert.ok(doc.components.schemas.TenantRoute.properties.roles.items.properties.scramSecret);
      assert.equal(doc.components.schemas.TenantView.properties.roles.items.properties.scramSecret, undefined);
    });

    test('migrations are recorded and idempotent, also when two control planes start at once', async () => {
      assert.deepEqual(await migrate(running.database), { applied: [], version: MIGRATIONS.length });
      assert.deepEqual(await migrate(running.database), { applied: [], version: MIGRATIONS.length });
      const rows = await running.database.query<{ version: number }>('SELECT version FROM control_plane_migrations ORDER BY version');
      assert.deepEqual(
        rows.map((r) => Number(r.version)),
        MIGRATIONS.map((m) => m.version),
      );
      if (home.emptyDatabaseUrl === undefined) return;
      const url = await home.emptyDatabaseUrl('racing');
      const [one, two] = [createPostgresDatabase({ connectionString: url }), createPostgresDatabase({ connectionString: url })];
      try {
        const results = await Promise.all([migrate(one), migrate(two)]);
        assert.deepEqual(results.map((r) => r.applied.length).sort(), [0, MIGRATIONS.length]);
      } finally {
        await Promise.all([one.close(), two.close()]);
      }
    });

    test('Redis down: writes succeed, /readyz says so, and the queued invalidations arrive after it is back', async () => {
      await eventually('earlier invalidations to drain', async () => {
        const ready = await api('GET', '/readyz');
        return ready.body.pendingInvalidations === 0 ? ready : undefined;
      }).then((ready) => assert.deepEqual(ready.body, { status: 'ready', store: 'up', redis: 'up', pendingInvalidations: 0 }));
      await redisServer.kill();
      await eventually('/readyz to report Redis down', async () => ((await api('GET', '/readyz')).status === 503 ? true : undefined));
      const writes = [
        await api('POST', '/v1/tenants', { json: tenantBody('offline-a') }),
        await api('POST', '/v1/tenants', { json: tenantBody('offline-b') }),
        await api('PATCH', '/v1/tenants/offline-a', { json: { status: 'suspended' } }),
      ];
      assert.deepEqual(
        writes.map((w) => w.status),
        [201, 201, 200],
      );
      const down = await api('GET', '/readyz');
      assert.equal(down.status, 503);
      assert.equal(down.body.code, ErrorCode.NotReady);
      assert.deepEqual(down.body.details, { store: 'up', redis: 'down', pendingInvalidations: 3 });

      await redisServer.restart();
      // The restarted Redis is empty: the floor keys it gets now come from the outbox.
      await eventually('the floor keys from the outbox', async () => {
        const [a, b] = await Promise.all([inspector.get(routeFloorKey('offline-a')), inspector.get(routeFloorKey('offline-b'))]);
        return a === String(writes[2].body.version) && b === String(writes[1].body.version) ? true : undefined;
      });
      await eventually('/readyz to be ready again', async () => {
        const reply = await api('GET', '/readyz');
        return reply.status === 200 && reply.body.pendingInvalidations === 0 ? true : undefined;
      });
      // And invalidations flow again.
      const later = await api('PATCH', '/v1/tenants/offline-b', { json: { status: 'maintenance' } });
      await invalidationOf('offline-b', later.body.version);
    });

    if (kind === 'pglite') {
      test('a PGlite data directory is opened by one store at a time', async () => {
        await assert.rejects(home.open(), { code: 'TG_ERR_DATA_DIR_IN_USE' });
      });
    }

    test('data persists when the app (and its store connection) restarts', async () => {
      const before = await api('GET', '/v1/tenants/acme');
      assert.equal(before.status, 200);
      await running.close();
      running = await startApp(await home.open(), { redisUrl: redisServer.url });
      const after = await api('GET', '/v1/tenants/acme');
      assert.deepEqual(after.body, before.body);
      const next = await create('after-restart');
      assert.ok(next.body.version > before.body.version);
    });
  });
}
