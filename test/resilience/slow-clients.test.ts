// Clients that trickle their bytes (docs/architecture.md, step 2): connections that send one byte
// a second are each closed at the handshake timeout, while a real client keeps logging in. The
// real client's login times are printed (tests do not assert on time); docs/reliability.md has
// them. SLOW_CLIENTS sets how many trickle at once (2,000 in test:resilience, 300 in npm test).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { connect as connectTcp, type Socket } from 'node:net';
import { createTestPki } from '@tenantgate/testing';
import { serializeSSLRequest } from '@tenantgate/wire';
import { NO_LIMITS, PASSWORD, connectPg, scratchDir, startCertBackend, startGateway, tenantHost } from '../gateway/harness.ts';

const SLOW_CLIENTS = Number(process.env.SLOW_CLIENTS ?? 300);
const HANDSHAKE_TIMEOUT_MS = 3_000;
/** Trickling clients per source address (127.0.0.2, .3, ...), within the per-address share. */
const PER_ADDRESS = 50;

/** Linux's cap on a listen backlog; 0 where it cannot be read. */
function somaxconn(): number {
  try {
    return Number(readFileSync('/proc/sys/net/core/somaxconn', 'utf8'));
  } catch {
    return 0;
  }
}

/** Sends `bytes` one a second until the gateway closes the connection; resolves with how long that took. */
function trickle(port: number, localAddress: string, bytes: Buffer): Promise<{ closedAfterMs: number; received: Buffer }> {
  return new Promise((resolve) => {
    const socket: Socket = connectTcp({ port, host: '127.0.0.1', localAddress });
    const started = performance.now();
    const chunks: Buffer[] = [];
    let sent = 0;
    const timer = setInterval(() => {
      if (sent < bytes.length) socket.write(bytes.subarray(sent, ++sent));
    }, 1_000);
    socket.on('error', () => {});
    socket.on('data', (chunk: Buffer) => chunks.push(chunk));
    socket.once('connect', () => socket.write(bytes.subarray(0, ++sent)));
    socket.once('close', () => {
      clearInterval(timer);
      resolve({ closedAfterMs: performance.now() - started, received: Buffer.concat(chunks) });
    });
  });
}

test(`${SLOW_CLIENTS} clients trickling a byte a second are each closed at the handshake timeout; a real client logs in meanwhile`, async (t) => {
  const pki = await createTestPki();
  const dir = scratchDir(t, 'gw-slow');
  const backend = await startCertBackend(t, pki);
  const tenants = [
    { id: 'acme', backend: { host: '127.0.0.1', port: backend.port }, roles: [{ name: 'app', password: PASSWORD }], limits: NO_LIMITS },
  ];
  const gateway = await startGateway(t, {
    pki,
    dir,
    tenants,
    settings: { handshakeTimeoutMs: HANDSHAKE_TIMEOUT_MS, maxPendingConnections: SLOW_CLIENTS + 100, maxPendingPerAddress: PER_ADDRESS },
  });
  const login = async (): Promise<number> => {
    const started = performance.now();
    const client = await connectPg(t, gateway, pki, { servername: tenantHost('acme'), database: 'app' });
    await client.query('select 1');
    await client.end();
    return performance.now() - started;
  };
  const quiet = [await login(), await login(), await login()];

  // An SSLRequest, one byte a second: the handshake never completes within its timeout.
  const slow = Array.from({ length: SLOW_CLIENTS }, (_, i) =>
    trickle(gateway.address.port, `127.0.0.${2 + Math.floor(i / PER_ADDRESS)}`, serializeSSLRequest()),
  );
  await new Promise((resolve) => setTimeout(resolve, 500));
  const busy: number[] = [];
  for (let i = 0; i < 5; i++) busy.push(await login());
  const closed = await Promise.all(slow);

  const late = closed.filter(({ closedAfterMs }) => closedAfterMs > HANDSHAKE_TIMEOUT_MS + 2_000);
  assert.equal(late.length, 0, `${late.length} trickling clients were not closed near the handshake timeout`);
  assert.ok(
    closed.every(({ received }) => received.length === 0),
    'a client that never finished its SSLRequest is closed without a word',
  );
  // Closed before the timeout: reset by the kernel, its queue of connections not yet accepted
  // having overflowed (the listen backlog). Where the kernel allows a backlog of them all, none is.
  const early = closed.filter(({ closedAfterMs }) => closedAfterMs < HANDSHAKE_TIMEOUT_MS).length;
  if (somaxconn() >= SLOW_CLIENTS + 100) assert.equal(early, 0, 'the listen backlog holds a burst of connections');
  const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]!;
  t.diagnostic(
    `${SLOW_CLIENTS} trickling clients, each closed after ${Math.round(Math.min(...closed.map((c) => c.closedAfterMs)))}-${Math.round(Math.max(...closed.map((c) => c.closedAfterMs)))} ms; ` +
      `${early} closed before it; ` +
      `real login median ${median(quiet).toFixed(1)} ms alone, ${median(busy).toFixed(1)} ms among them`,
  );
});
