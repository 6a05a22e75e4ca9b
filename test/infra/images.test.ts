// Static checks of the container images (deploy/docker), for machines without a container
// engine: each Dockerfile is read instruction by instruction and checked against the repository
// and the app it packages. Every stage on node:24-slim; the dependency stage copies every
// workspace's manifest (npm ci checks the lockfile against all of them); every COPY source exists
// and no runtime source imports what .dockerignore leaves out; the image runs as a user other than
// root, starts Node in exec form (so SIGTERM reaches it), sets only variables the app accepts,
// exposes the ports its listen variables name, and its HEALTHCHECK asks one of those ports.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { CONTROL_PLANE_VARIABLES, GATEWAY_VARIABLES } from '@tenantgate/runtime';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));

interface Instruction {
  readonly keyword: string;
  readonly args: string;
}

/** Instructions in order: comments dropped, `\` continuations joined. */
function instructions(text: string): Instruction[] {
  const joined = text
    .split('\n')
    .filter((line) => !line.trimStart().startsWith('#'))
    .join('\n')
    .replace(/\\\n\s*/g, ' ');
  return joined
    .split('\n')
    .map((line) => line.trim())
    .filter((line) => line !== '')
    .map((line) => {
      const [keyword = '', ...rest] = line.split(/\s+/);
      return { keyword: keyword.toUpperCase(), args: rest.join(' ') };
    });
}

/** `NAME=value` pairs of ENV instructions. */
function environment(list: readonly Instruction[]): Map<string, string> {
  const env = new Map<string, string>();
  for (const { args } of list.filter((i) => i.keyword === 'ENV')) {
    for (const pair of args.split(/\s+/)) {
      const at = pair.indexOf('=');
      env.set(pair.slice(0, at), pair.slice(at + 1));
    }
  }
  return env;
}

const IMAGES = [
  {
    file: 'deploy/docker/gateway.Dockerfile',
    app: 'apps/gateway',
    variables: GATEWAY_VARIABLES,
    listen: ['GATEWAY_LISTEN', 'GATEWAY_ADMIN_LISTEN'],
  },
  {
    file: 'deploy/docker/control-plane.Dockerfile',
    app: 'apps/control-plane',
    variables: CONTROL_PLANE_VARIABLES,
    listen: ['CONTROL_PLANE_LISTEN'],
  },
] as const;

for (const image of IMAGES) {
  test(`${image.file}: what it copies, how it runs, what it sets and exposes`, () => {
    const list = instructions(readFileSync(join(ROOT, image.file), 'utf8'));
    const froms = list.filter((i) => i.keyword === 'FROM');
    assert.ok(froms.length >= 2, 'multi-stage');
    for (const from of froms) assert.match(from.args, /^node:24-slim( AS \w+)?$/i);

    // The dependency stage: every workspace's manifest, then npm ci of production dependencies for the app.
    const workspaces = (JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { workspaces: string[] }).workspaces;
    const manifests = workspaces.flatMap((pattern) =>
      pattern.endsWith('/*')
        ? ['apps/gateway', 'apps/control-plane', 'libs/wire', 'libs/tenancy', 'libs/runtime'].filter((dir) =>
            dir.startsWith(pattern.slice(0, -1)),
          )
        : [pattern],
    );
    const firstStage = list.slice(0, list.indexOf(froms[1]!));
    const copiedFirst = firstStage.filter((i) => i.keyword === 'COPY').map((i) => i.args);
    for (const dir of manifests)
      assert.ok(
        copiedFirst.some((args) => args.startsWith(`${dir}/package.json `)),
        `${dir}/package.json is copied for npm ci`,
      );
    const install = firstStage.find((i) => i.keyword === 'RUN' && i.args.startsWith('npm ci'));
    assert.ok(install, 'npm ci in the dependency stage');
    assert.match(install.args, /--omit=dev/);
    assert.match(install.args, new RegExp(`--workspace=${image.app}\\b`));

    // Every COPY source exists (a COPY --from copies from a stage), and the app's sources are in.
    for (const copy of list.filter((i) => i.keyword === 'COPY' && !i.args.startsWith('--from'))) {
      const sources = copy.args.split(/\s+/).slice(0, -1);
      for (const source of sources) assert.ok(existsSync(join(ROOT, source)), `${source} does not exist`);
    }
    assert.ok(list.some((i) => i.keyword === 'COPY' && i.args === `${image.app}/src ${image.app}/src`));

    // How it runs.
    const last = list.slice(list.indexOf(froms.at(-1)!));
    const user = last.filter((i) => i.keyword === 'USER').at(-1);
    assert.ok(user !== undefined && user.args !== 'root' && user.args !== '0', 'runs as a user other than root');
    const cmd = last.find((i) => i.keyword === 'CMD');
    assert.ok(cmd, 'a CMD');
    const argv = JSON.parse(cmd.args) as string[];
    assert.equal(argv[0], 'node', 'exec form, Node as PID 1: SIGTERM reaches its handler');
    assert.ok(existsSync(join(ROOT, argv.at(-1)!)), `${argv.at(-1)} exists`);
    assert.equal(last.find((i) => i.keyword === 'STOPSIGNAL')?.args ?? 'SIGTERM', 'SIGTERM');

    // What it sets: only variables the app accepts (and NODE_ENV); the ports it exposes are those.
    const env = environment(last);
    const accepted = new Set<string>(image.variables.map((v) => v.name));
    for (const name of env.keys()) assert.ok(name === 'NODE_ENV' || accepted.has(name), `${name} is not a variable of ${image.app}`);
    const ports = image.listen.map((name) => {
      const value = env.get(name);
      assert.ok(value !== undefined, `${name} is set for the container's interfaces`);
      assert.match(value, /^0\.0\.0\.0:\d+$/, `${name} listens on every interface of the container`);
      return value.split(':')[1]!;
    });
    const exposed = last.filter((i) => i.keyword === 'EXPOSE').flatMap((i) => i.args.split(/\s+/));
    assert.deepEqual([...exposed].sort(), [...ports].sort());
    const health = last.find((i) => i.keyword === 'HEALTHCHECK');
    assert.ok(health, 'a HEALTHCHECK');
    const port = /http:\/\/127\.0\.0\.1:(\d+)\/healthz/.exec(health.args)?.[1];
    assert.ok(port !== undefined && ports.includes(port), `the health check asks /healthz on one of ${ports.join(', ')}`);
  });
}

test('.dockerignore leaves out only what the apps never import at run time', () => {
  const ignored = readFileSync(join(ROOT, '.dockerignore'), 'utf8')
    .split('\n')
    .filter((line) => line.trim() !== '' && !line.startsWith('#'));
  assert.ok(ignored.includes('**/node_modules'), 'the host node_modules stays out');
  assert.ok(ignored.includes('**/*.test.ts') && ignored.includes('**/testing'));
  // Test files and test helpers are left out: no file the apps run may import them.
  const runtime = ['apps/gateway/src', 'apps/control-plane/src', 'libs/wire/src', 'libs/tenancy/src', 'libs/runtime/src'].flatMap((dir) =>
    readdirSync(join(ROOT, dir), { recursive: true, encoding: 'utf8' })
      .filter((file) => file.endsWith('.ts') && !file.endsWith('.test.ts') && !file.split('/').includes('testing'))
      .map((file) => join(dir, file)),
  );
  assert.ok(runtime.length > 50);
  const offenders = runtime.filter((file) =>
    /from '(\.{1,2}\/)+(\w+\/)*testing\/|from '@tenantgate\/testing'/.test(readFileSync(join(ROOT, file), 'utf8')),
  );
  assert.deepEqual(offenders, []);
});
