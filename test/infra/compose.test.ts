// The local fleet of deploy/compose.yaml, for machines without a container engine. Statically:
// every file it builds from or mounts exists, each app's environment names only variables the app
// accepts, ports agree with the images' listen variables, and the services' references to each
// other (URLs, tokens, the store's role and database) agree. Then a rehearsal runs the same
// settings as processes on this machine: a PostgreSQL set up by the fleet's pg_hba.conf and
// init.sql with the development certificates, a Redis, the control plane and two gateways with
// the fleet's environment (service names and container paths mapped to local ones), a tenant
// created through the API and reached through both gateways, terminate-sessions acknowledged
// by both, and a certificate-mode tenant reached with a certificate the control plane signed.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse } from 'yaml';
import { CONTROL_PLANE_VARIABLES, GATEWAY_VARIABLES } from '@tenantgate/runtime';
import { getFreePort, requirePsql, runPsql, startPostgres, startRedis } from '@tenantgate/testing';
import { call, eventually } from '../control-plane/harness.ts';
import { CONTROL_PLANE_MAIN, startAppProcess, startGatewayProcess } from '../gateway/app-processes.ts';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const DEPLOY = join(ROOT, 'deploy');

interface Service {
  readonly image?: string;
  readonly build?: { readonly context: string; readonly dockerfile: string };
  readonly environment?: Readonly<Record<string, string>>;
  readonly ports?: readonly string[];
  readonly volumes?: readonly string[];
  readonly depends_on?: Readonly<Record<string, { readonly condition: string }>>;
  readonly entrypoint?: readonly string[];
  readonly healthcheck?: unknown;
}

const compose = parse(readFileSync(join(DEPLOY, 'compose.yaml'), 'utf8'), { merge: true }) as {
  services: Record<string, Service>;
  volumes?: Record<string, unknown>;
};
const services = compose.services;
const GATEWAYS = ['gateway-1', 'gateway-2'] as const;
const APPS = [
  { service: 'control-plane', variables: CONTROL_PLANE_VARIABLES, dockerfile: 'deploy/docker/control-plane.Dockerfile' },
  ...GATEWAYS.map((service) => ({ service, variables: GATEWAY_VARIABLES, dockerfile: 'deploy/docker/gateway.Dockerfile' })),
];
/** Where the development certificates are mounted, and what they are made from. */
const CERTS_VOLUME = '../.data/certs';
const CERTS_IN_CONTAINER = '/certs/';

/** `ENV` settings of a Dockerfile's last stage, e.g. GATEWAY_LISTEN=0.0.0.0:5432. */
function imageEnvironment(dockerfile: string): Map<string, string> {
  const text = readFileSync(join(ROOT, dockerfile), 'utf8');
  const last = text.slice(text.lastIndexOf('\nFROM '));
  const env = new Map<string, string>();
  for (const [, args] of last.matchAll(/^ENV (.+)$/gm)) {
    for (const pair of args!.split(/\s+/)) env.set(pair.slice(0, pair.indexOf('=')), pair.slice(pair.indexOf('=') + 1));
  }
  return env;
}

const port = (listen: string) => listen.slice(listen.lastIndexOf(':') + 1);
/** `[host:]published:container` of a ports entry. */
const containerPort = (mapping: string) => mapping.split(':').at(-1)!;

test('deploy/compose.yaml: its services, and every file they build from or mount exists', () => {
  assert.deepEqual(Object.keys(services).sort(), ['control-plane', 'gateway-1', 'gateway-2', 'postgres', 'redis']);
  for (const { service, dockerfile } of APPS) {
    const build = services[service]!.build;
    assert.ok(build !== undefined, `${service} is built from the repository`);
    assert.equal(resolve(DEPLOY, build.context), resolve(ROOT), `${service} builds from the repository root`);
    assert.equal(build.dockerfile, dockerfile);
  }
  for (const [name, service] of Object.entries(services)) {
    for (const volume of service.volumes ?? []) {
      const [source = ''] = volume.split(':');
      if (!source.startsWith('.')) {
        assert.ok(compose.volumes?.[source] !== undefined, `${name}: the named volume ${source} is declared`);
        continue;
      }
      // The development certificates are made by `npm start` (the rehearsal below makes and uses them).
      if (source === CERTS_VOLUME) continue;
      assert.ok(existsSync(join(DEPLOY, source)), `${name} mounts ${source}, which does not exist`);
    }
    for (const dependency of Object.keys(service.depends_on ?? {})) {
      assert.ok(services[dependency] !== undefined, `${name} depends on ${dependency}, no such service`);
      assert.ok(
        services[dependency]!.healthcheck !== undefined || services[dependency]!.build !== undefined,
        `${dependency} says when it is healthy`,
      );
    }
  }
});

test("deploy/compose.yaml: each app's variables are its own, its ports its image's, and the services' references agree", () => {
  for (const { service, variables, dockerfile } of APPS) {
    const env = services[service]!.environment ?? {};
    const accepted = new Set<string>(variables.map((v) => v.name));
    for (const name of Object.keys(env)) assert.ok(accepted.has(name), `${service}: ${name} is not a variable of the app`);
    // The image listens on 0.0.0.0 at its listen variables' ports; the published ports lead there.
    const image = imageEnvironment(dockerfile);
    const listening = [...image.entries()].filter(([name]) => name.endsWith('_LISTEN')).map(([, value]) => port(value));
    assert.deepEqual((services[service]!.ports ?? []).map(containerPort).sort(), listening.sort(), `${service}'s ports`);
  }
  const published = Object.values(services).flatMap((service) =>
    (service.ports ?? []).map((mapping) => mapping.split(':').slice(0, -1).join(':')),
  );
  assert.equal(new Set(published).size, published.length, 'no two services publish one host port');

  const controlPlane = services['control-plane']!.environment!;
  const controlPlanePort = port(imageEnvironment('deploy/docker/control-plane.Dockerfile').get('CONTROL_PLANE_LISTEN')!);
  for (const gateway of GATEWAYS) {
    const env = services[gateway]!.environment!;
    assert.equal(env.GATEWAY_CONTROL_PLANE_URL, `http://control-plane:${controlPlanePort}`);
    assert.ok(
      controlPlane.CONTROL_PLANE_GATEWAY_TOKENS!.split(',').includes(env.GATEWAY_CONTROL_PLANE_TOKEN!),
      'the control plane takes the gateway token',
    );
    assert.equal(env.REDIS_URL, controlPlane.REDIS_URL, 'one Redis for the fleet');
    for (const [name, value] of Object.entries(env).filter(([, v]) => v.startsWith(CERTS_IN_CONTAINER))) {
      assert.ok(
        services[gateway]!.volumes!.includes(`${CERTS_VOLUME}:${CERTS_IN_CONTAINER.slice(0, -1)}:ro`),
        `${gateway} mounts the certificates: ${name}=${value}`,
      );
    }
  }
  assert.equal(new URL(controlPlane.REDIS_URL!).hostname, 'redis');
  const store = new URL(controlPlane.DATABASE_URL!);
  assert.equal(store.hostname, 'postgres');
  const init = readFileSync(join(DEPLOY, 'compose', 'init.sql'), 'utf8');
  assert.match(init, new RegExp(`create role ${store.username} login password '${store.password}'`));
  assert.match(init, new RegExp(`create database ${store.pathname.slice(1)} owner ${store.username}`));

  // PostgreSQL starts with the mounted certificates and pg_hba.conf.
  const entrypoint = services.postgres!.entrypoint!.join(' ');
  for (const file of ['/certs/backend.crt', '/certs/backend.key', '/certs/ca.crt', '/etc/tenantgate/pg_hba.conf'])
    assert.ok(entrypoint.includes(file), file);
  assert.ok(services.postgres!.volumes!.includes('./compose/pg_hba.conf:/etc/tenantgate/pg_hba.conf:ro'));
});

test('deploy/compose.yaml rehearsed as processes: a tenant created through the API answers through both gateways, both acknowledge terminate-sessions, and a certificate from the control plane logs in', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'tg-compose-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  // The development certificates the fleet mounts, made as `npm start` makes them.
  execFileSync(
    process.execPath,
    [
      '--conditions=@tenantgate/source',
      '--input-type=module',
      '-e',
      `await (await import(${JSON.stringify(join(ROOT, 'tools', 'dev-certs.ts'))})).ensureDevCertificates(${JSON.stringify(dir)})`,
    ],
    { cwd: ROOT, stdio: 'inherit' },
  );
  const certs = join(dir, 'certs');
  const read = (file: string) => readFileSync(join(certs, file), 'utf8');

  // PostgreSQL with the fleet's pg_hba.conf (the fixture has its own `local` line) and init.sql.
  const hba = readFileSync(join(DEPLOY, 'compose', 'pg_hba.conf'), 'utf8')
    .split('\n')
    .filter((line) => line.trim() !== '' && !line.startsWith('#') && !line.startsWith('local'));
  const postgres = await startPostgres({ serverCert: read('backend.crt'), serverKey: read('backend.key'), clientCa: read('ca.crt'), hba });
  t.after(() => postgres.stop());
  const init = readFileSync(join(DEPLOY, 'compose', 'init.sql'), 'utf8').replace(/^--.*$/gm, '');
  for (const statement of init
    .split(';')
    .map((s) => s.trim())
    .filter((s) => s !== ''))
    await postgres.sql(statement);
  const redis = await startRedis();
  t.after(() => redis.stop());

  // The services' settings, with the compose network's names and paths mapped to this machine's.
  const local = (value: string): string =>
    value
      .replace('@postgres:5432/', `@127.0.0.1:${postgres.port}/`)
      .replace('redis://redis:6379', redis.url)
      .replace(/^\/certs\//, `${certs}/`);
  const localEnv = (service: string) =>
    Object.fromEntries(Object.entries(services[service]!.environment!).map(([name, value]) => [name, local(value)]));
  const controlPlaneListen = `127.0.0.1:${await getFreePort()}`;
  await startAppProcess(
    t,
    CONTROL_PLANE_MAIN,
    {
      PATH: process.env.PATH ?? '',
      ...localEnv('control-plane'),
      CONTROL_PLANE_LISTEN: controlPlaneListen,
      // In the fleet the backend is `postgres`; here it is this machine's loopback.
      CONTROL_PLANE_ALLOW_LOCAL_BACKENDS: 'true',
    },
    'control plane ready',
  );
  const gateways = [];
  for (const gateway of GATEWAYS) {
    const env = localEnv(gateway);
    gateways.push(
      await startGatewayProcess(t, {
        PATH: process.env.PATH ?? '',
        ...env,
        GATEWAY_CONTROL_PLANE_URL: env.GATEWAY_CONTROL_PLANE_URL!.replace(/^http:\/\/control-plane:\d+/, `http://${controlPlaneListen}`),
        GATEWAY_LISTEN: `127.0.0.1:${await getFreePort()}`,
        GATEWAY_ADMIN_LISTEN: `127.0.0.1:${await getFreePort()}`,
      }),
    );
  }

  // The tenant of docs/getting-started.md's local fleet; serverName is the fleet's host name.
  const adminToken = services['control-plane']!.environment!.CONTROL_PLANE_ADMIN_TOKENS!.split(',')[0]!;
  const base = `http://${controlPlaneListen}`;
  const created = await call(base, 'POST', '/v1/tenants', {
    token: adminToken,
    json: {
      id: 'acme',
      backend: { host: '127.0.0.1', port: postgres.port, database: 'postgres', serverName: 'postgres' },
      roles: [{ name: 'app', password: 'app-password', backendUser: 'tenantgate' }],
    },
  });
  assert.equal(created.status, 201, JSON.stringify(created.body));
  for (const gateway of gateways) {
    const run = await runPsql(
      {
        host: 'acme.db.localhost',
        hostaddr: '127.0.0.1',
        port: String(gateway.address.port),
        user: 'app',
        dbname: 'postgres',
        sslmode: 'verify-full',
        sslrootcert: join(certs, 'ca.crt'),
      },
      { password: 'app-password', sql: 'select greeting from hello' },
    );
    assert.equal(run.code, 0, run.stderr);
    assert.match(run.stdout, /acme's own database/);
  }
  const ended = await eventually('both gateways subscribed', async () => {
    const reply = await call(base, 'POST', '/v1/tenants/acme/terminate-sessions', { token: adminToken });
    return reply.status === 200 && (reply.body as { acknowledged: number }).acknowledged === 2 ? reply : undefined;
  });
  assert.deepEqual(ended.body, { tenant: 'acme', gateways: 2, acknowledged: 2, sessionsEnded: 0 });

  // The fleet's control plane signs client certificates: a certificate-mode tenant on the same
  // backend, reached through `npm run tenantgate -- connect` with no password.
  const initech = await call(base, 'POST', '/v1/tenants', {
    token: adminToken,
    json: {
      id: 'initech',
      authMode: 'certificate',
      backend: { host: '127.0.0.1', port: postgres.port, database: 'postgres', serverName: 'postgres' },
      roles: [{ name: 'app', password: 'app-password', backendUser: 'tenantgate' }],
    },
  });
  assert.equal(initech.status, 201, JSON.stringify(initech.body));
  const connectArgs = ['connect', 'initech', 'app', '--control-plane', base, '--gateway', `127.0.0.1:${gateways[0]!.address.port}`];
  connectArgs.push('--domain', 'db.localhost', '--ca', join(certs, 'ca.crt'));
  const printed = execFileSync(
    process.execPath,
    ['--conditions=@tenantgate/source', join(ROOT, 'tools', 'tenantgate.ts'), ...connectArgs],
    {
      env: { ...process.env, TENANTGATE_DATA_DIR: dir, TENANTGATE_ADMIN_TOKEN: adminToken },
      encoding: 'utf8',
    },
  );
  const conninfo = /^psql "(.+)"$/m.exec(printed)?.[1];
  assert.ok(conninfo !== undefined, printed);
  const greeting = execFileSync(requirePsql(), ['-X', '-w', conninfo, '-Atc', 'select greeting from hello'], {
    env: { PATH: process.env.PATH ?? '', HOME: dir },
    encoding: 'utf8',
  });
  assert.equal(greeting.trim(), "acme's own database");
});
