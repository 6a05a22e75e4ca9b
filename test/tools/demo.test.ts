// `npm run demo` and `npm start` as a newcomer runs them: the stack comes up, the commands it
// prints work as printed (psql through the gateway, curl against the control plane), and
// Ctrl-C (SIGINT) stops every process it started.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { getFreePort, requirePsql } from '@tenantgate/testing';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const dir = await mkdtemp(join(tmpdir(), 'tg-demo-'));
after(() => rm(dir, { recursive: true, force: true }));

/** Runs a tool the way `npm run` does, on free ports and a data directory of its own. */
async function startTool(script: string, dataDir: string): Promise<{ child: ChildProcess; output: () => string; ready: Promise<void> }> {
  const child = spawn(process.execPath, ['--conditions=@tenantgate/source', join(ROOT, 'tools', script)], {
    cwd: ROOT,
    env: {
      PATH: process.env.PATH ?? '',
      TENANTGATE_DATA_DIR: dataDir,
      CONTROL_PLANE_LISTEN: `127.0.0.1:${await getFreePort()}`,
      GATEWAY_LISTEN: `127.0.0.1:${await getFreePort()}`,
      GATEWAY_ADMIN_LISTEN: `127.0.0.1:${await getFreePort()}`,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let text = '';
  child.stdout?.on('data', (chunk: Buffer) => (text += chunk.toString()));
  child.stderr?.on('data', (chunk: Buffer) => (text += chunk.toString()));
  const ready = new Promise<void>((resolve, reject) => {
    child.stdout?.on('data', () => {
      if (text.includes('(Ctrl-C stops it)') && /\n\s*(psql|PGPASSWORD|curl)[^\n]*\n[\s\S]*\n$/.test(text)) resolve();
    });
    child.once('exit', (code) => reject(new Error(`${script} exited with ${code}:\n${text}`)));
  });
  return { child, output: () => text, ready };
}

/** A printed command, run by a shell as a user would paste it. */
async function shell(command: string): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const child = spawn('sh', ['-c', command], { cwd: ROOT, env: { PATH: process.env.PATH ?? '', HOME: dir } });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const [code] = await once(child, 'exit');
  return { code, stdout, stderr };
}

async function stop(child: ChildProcess): Promise<number | null> {
  const exited = once(child, 'exit');
  child.kill('SIGINT');
  const [code] = await exited;
  return code as number | null;
}

test('npm run demo: the printed psql commands and the certificate login reach their own tenant, curl lists the tenants, Ctrl-C stops it', async (t) => {
  requirePsql();
  const demo = await startTool('demo.ts', join(dir, 'demo'));
  t.after(() => demo.child.kill('SIGKILL'));
  await demo.ready;
  const lines = demo
    .output()
    .split('\n')
    .map((line) => line.trim());
  const psql = lines.filter((line) => line.startsWith('PGPASSWORD='));
  assert.equal(psql.length, 2);
  const acme = await shell(psql[0]!);
  assert.equal(acme.code, 0, acme.stderr);
  assert.match(acme.stdout, /acme's own database/);
  const globex = await shell(psql[1]!);
  assert.equal(globex.code, 0, globex.stderr);
  assert.match(globex.stdout, /globex's own database/);
  // initech: a certificate from the control plane, no password.
  const connect = lines.find((line) => line.startsWith('npm run tenantgate -- connect '));
  assert.equal(connect, 'npm run tenantgate -- connect initech app');
  const issued = await shell(`TENANTGATE_DATA_DIR=${join(dir, 'demo')} npm run --silent ${connect!.slice('npm run '.length)}`);
  assert.equal(issued.code, 0, issued.stderr);
  const initechPsql = /^psql "[^"]+"$/m.exec(issued.stdout)?.[0];
  assert.ok(initechPsql !== undefined, issued.stdout);
  const initech = await shell(`${initechPsql} -c 'select * from hello'`);
  assert.equal(initech.code, 0, initech.stderr);
  assert.match(initech.stdout, /initech's own database/);
  const [tenantsCurl, clustersCurl] = lines.filter((line) => line.startsWith('curl '));
  const listed = JSON.parse((await shell(tenantsCurl!)).stdout) as {
    items: { id: string; provisioning?: { cluster: string; state: string } }[];
  };
  assert.deepEqual(
    listed.items.map((tenant) => [tenant.id, tenant.provisioning?.cluster, tenant.provisioning?.state]),
    [
      ['acme', 'east', 'active'],
      ['globex', 'west', 'active'],
      ['initech', undefined, undefined],
    ],
  );
  const clusters = JSON.parse((await shell(clustersCurl!)).stdout) as { items: { id: string; serverVersion: string }[] };
  assert.deepEqual(
    clusters.items.map((cluster) => cluster.id),
    ['east', 'west'],
  );
  assert.match(clusters.items[0]!.serverVersion, /^\d+/);
  assert.equal(await stop(demo.child), 0);
});

test('npm start: the printed curl creates a tenant, and the stack stops on Ctrl-C', async (t) => {
  const start = await startTool('start.ts', join(dir, 'start'));
  t.after(() => start.child.kill('SIGKILL'));
  await start.ready;
  const text = start.output();
  const token = /export TG_TOKEN=(\S+)/.exec(text)?.[1];
  assert.ok(token !== undefined, text);
  // The two printed lines of the curl command, joined as the shell joins a trailing backslash.
  const curl = /(curl -sS [^\n]*\\\n[^\n]*)/.exec(text)?.[1]?.replace('\\\n', ' ');
  assert.ok(curl !== undefined, text);
  const created = await shell(`TG_TOKEN=${token}; ${curl}`);
  assert.equal((JSON.parse(created.stdout) as { id: string }).id, 'acme', created.stdout + created.stderr);
  assert.match(
    text,
    /psql "host=acme\.db\.localhost hostaddr=127\.0\.0\.1 port=\d+ user=app dbname=postgres sslmode=verify-full sslrootcert=\S+"/,
  );
  assert.equal(await stop(start.child), 0);
});
