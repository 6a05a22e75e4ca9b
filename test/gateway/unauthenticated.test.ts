// Clients that never log in (docs/architecture.md, step 7): parked in authentication, they
// spend neither the tenant's connection cap nor its connect rate, and make the backend fork no
// more than the tenant's early-open budget, while a real client of the same tenant and one of
// another tenant on the same PostgreSQL keep logging in.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { createTestPki } from '@tenantgate/testing';
import { serializeStartupMessage } from '@tenantgate/wire';
import {
  NO_LIMITS,
  connectPg,
  nextMessage,
  parsed,
  scratchDir,
  serverMessages,
  startBackend,
  startGateway,
  tenantHost,
  upgradeToTls,
  type TenantEntry,
} from './harness.ts';

/** The gateway's default early-open budget per tenant (session/admission.ts EARLY_OPENS_PER_TENANT). */
const EARLY_OPENS = 4;
const PARKED = 12;

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
  const backend = await startBackend(t, pki, {
    hba: ['hostssl all all 127.0.0.1/32 cert'],
    roles: [{ name: 'app' }],
    databases: [{ name: 'app', owner: 'app' }],
  });
  if (backend.dataDir === undefined) return t.skip('the backend runs in a container: its processes are not visible here');
  const at = { host: '127.0.0.1', port: backend.port };
  const tenants: TenantEntry[] = [
    { id: 'small', backend: at, roles: [{ name: 'app', password: 'small-pw' }], limits: { maxConnections: 2, connectsPerSecond: 3 } },
    { id: 'other', backend: at, roles: [{ name: 'app', password: 'other-pw' }], limits: NO_LIMITS },
  ];
  const gateway = await startGateway(t, { pki, dir, tenants });
  // A connection made and closed first: TLS sessions and contexts are warm, helpers all started.
  await (await connectPg(t, gateway, pki, { servername: tenantHost('other'), password: 'other-pw' })).end();
  await new Promise((resolve) => setTimeout(resolve, 200));
  const before = await postmasterChildren(backend.dataDir);

  for (let i = 0; i < PARKED; i++) {
    const socket = await upgradeToTls(t, gateway, pki, tenantHost('small'));
    const messages = serverMessages(socket);
    socket.write(
      serializeStartupMessage({
        minorVersion: 0,
        parameters: new Map([
          ['user', i % 2 === 0 ? 'app' : 'mallory'],
          ['database', 'app'],
        ]),
      }),
    );
    // Asked for SCRAM, the client says nothing more.
    assert.equal(parsed(await nextMessage(messages)).kind, 'AuthenticationSASL');
  }
  await new Promise((resolve) => setTimeout(resolve, 200));
  const forked = (await postmasterChildren(backend.dataDir)) - before;
  assert.ok(forked <= EARLY_OPENS, `${PARKED} parked clients made the backend fork ${forked} processes; the budget is ${EARLY_OPENS}`);

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
