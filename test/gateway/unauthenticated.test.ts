// Clients that never log in (docs/architecture.md, steps 1 and 7): parked in authentication, they
// spend neither the tenant's connection cap nor its connect rate, and make the backend fork no
// more than the tenant's early-open budget; silent sockets and parked clients from one address
// fill only that address's share of the pending connections. Meanwhile real clients of the same
// tenant and of another tenant on the same PostgreSQL keep logging in.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { readFile, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { createTestPki } from '@tenantgate/testing';
import { serializeSSLRequest } from '@tenantgate/wire';
import {
  NO_LIMITS,
  connectPg,
  rawConnect,
  scratchDir,
  startCertBackend,
  startGateway,
  tenantHost,
  openToScram,
  type TenantEntry,
} from './harness.ts';

/** The gateway's default early-open budget per tenant (session/admission.ts EARLY_OPENS_PER_TENANT). */
const EARLY_OPENS = 4;
/** Clients parked in authentication, and silent sockets from one address (more in test:resilience). */
const PARKED = Number(process.env.FLOOD_PARKED ?? 12);
const SILENT = Number(process.env.FLOOD_SILENT ?? 200);

/** Processes the postmaster has forked (backends, including those still reading a startup packet, and its helpers). */
async function postmasterChildren(dataDir: string): Promise<number> {
  const pid = (await readFile(join(dataDir, 'postmaster.pid'), 'utf8')).split('\n', 1)[0]!.trim();
  let count = 0;
  for (const entry of await readdir('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const stat = await readFile(`/proc/${entry}/stat`, 'utf8').catch(() => '');
    // pid (comm) state ppid ...: comm may hold spaces, so read after its closing parenthesis.
    const ppid = stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1];
    if (ppid === pid) count++;
  }
  return count;
}

test('clients that never log in hold no capacity and start no backend beyond the early-open budget', async (t) => {
  const pki = await createTestPki();
  const dir = scratchDir(t, 'gw-unauthenticated');
  const backend = await startCertBackend(t, pki);
  const { dataDir } = backend;
  const at = { host: '127.0.0.1', port: backend.port };
  const tenants: TenantEntry[] = [
    { id: 'small', backend: at, roles: [{ name: 'app', password: 'small-pw' }], limits: { maxConnections: 2, connectsPerSecond: 3 } },
    { id: 'other', backend: at, roles: [{ name: 'app', password: 'other-pw' }], limits: NO_LIMITS },
  ];
  const gateway = await startGateway(t, { pki, dir, tenants });
  // A connection made and closed first: TLS sessions and contexts are warm, helpers all started.
  await (await connectPg(t, gateway, pki, { servername: tenantHost('other'), password: 'other-pw' })).end();
  await new Promise((resolve) => setTimeout(resolve, 200));
  // The postmaster's children are counted where its processes are this machine's (not in a container).
  const before = dataDir === undefined ? undefined : await postmasterChildren(dataDir);

  for (let i = 0; i < PARKED; i++) await openToScram(t, gateway, pki, { tenant: 'small', user: i % 2 === 0 ? 'app' : 'mallory' });
  await new Promise((resolve) => setTimeout(resolve, 200));
  if (dataDir !== undefined && before !== undefined) {
    const forked = (await postmasterChildren(dataDir)) - before;
    assert.ok(forked <= EARLY_OPENS, `${PARKED} parked clients made the backend fork ${forked} processes; the budget is ${EARLY_OPENS}`);
    t.diagnostic(`${PARKED} clients parked in authentication: the backend forked ${forked} processes (budget ${EARLY_OPENS})`);
  }

  // The tenant's cap is 2 and its rate 3 per second: 12 parked clients took none of either.
  const first = await connectPg(t, gateway, pki, { servername: tenantHost('small'), password: 'small-pw', database: 'app' });
  const second = await connectPg(t, gateway, pki, { servername: tenantHost('small'), password: 'small-pw', database: 'app' });
  const [row] = (await first.query<{ one: number }>('select 1 as one')).rows;
  assert.equal(row?.one, 1);
  await second.query('select 1');
  const other = await connectPg(t, gateway, pki, { servername: tenantHost('other'), password: 'other-pw', database: 'app' });
  await other.query('select 1');
  await Promise.all([first.end(), second.end(), other.end()]);
});

test('silent sockets from one address fill only its share of the pending connections, not the gateway', async (t) => {
  const pki = await createTestPki();
  const dir = scratchDir(t, 'gw-silent');
  const backend = await startCertBackend(t, pki);
  const at = { host: '127.0.0.1', port: backend.port };
  const tenants: TenantEntry[] = [{ id: 'acme', backend: at, roles: [{ name: 'app', password: 'acme-pw' }], limits: NO_LIMITS }];
  const PER_ADDRESS = 20;
  const gateway = await startGateway(t, {
    pki,
    dir,
    tenants,
    settings: { maxPendingConnections: SILENT, maxPendingPerAddress: PER_ADDRESS },
  });

  // Silent sockets from 127.0.0.2: the first 20 are held, the rest refused at once with 53300.
  const silent = await Promise.all(Array.from({ length: SILENT }, () => rawConnect(t, gateway, '127.0.0.2')));
  const refused = await Promise.all(
    silent.map(
      (socket) =>
        new Promise<boolean>((resolve) => {
          socket.once('data', (bytes: Buffer) => resolve(bytes.includes(Buffer.from('53300'))));
          socket.once('close', () => resolve(false));
          setTimeout(() => resolve(false), 2000).unref();
        }),
    ),
  );
  assert.equal(refused.filter(Boolean).length, SILENT - PER_ADDRESS);
  t.diagnostic(`${SILENT} silent sockets from one address: ${PER_ADDRESS} held, ${refused.filter(Boolean).length} refused with 53300`);

  // Clients parked in authentication from 127.0.0.3 hold their share until the splice: once 20
  // wait at the SCRAM exchange, the next one from there is refused before TLS.
  for (let i = 0; i < PER_ADDRESS; i++) await openToScram(t, gateway, pki, { tenant: 'acme', user: 'app', localAddress: '127.0.0.3' });
  const extra = await rawConnect(t, gateway, '127.0.0.3');
  extra.write(serializeSSLRequest());
  const [reply] = (await once(extra, 'data')) as [Buffer];
  assert.equal(reply.toString('latin1', 0, 1), 'E', 'refused with an ErrorResponse where S would be');
  assert.ok(reply.includes(Buffer.from('53300')));

  // Real clients from 127.0.0.1 log in all along.
  for (let i = 0; i < 3; i++) {
    const client = await connectPg(t, gateway, pki, { servername: tenantHost('acme'), password: 'acme-pw', database: 'app' });
    await client.query('select 1');
    await client.end();
  }
});
