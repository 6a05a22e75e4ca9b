// Seeded random and mutated client bytes through the whole gateway (createGateway, a real
// PostgreSQL behind it): startup packets, SSLRequests followed by garbage, TLS records, PROXY
// headers and SCRAM messages after a valid startup. Every case must end, within the phase
// timeouts, in a close that leaves only what PostgreSQL would send: an 'S'/'N' answer, backend
// messages ending in an ErrorResponse, a TLS alert, or nothing; no case may crash the process or
// leave a socket open. FUZZ_CASES sets the number of cases (5,000 in `npm test`, 100,000 in
// `npm run test:resilience`), FUZZ_SEED the seed (printed, so a failure can be replayed).
// Map: docs/architecture.md, "Errors".
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readlinkSync } from 'node:fs';
import { connect as connectTcp } from 'node:net';
import fc from 'fast-check';
import type { Gateway } from '@tenantgate/gateway';
import { createTestPki } from '@tenantgate/testing';
import {
  FrameDecoder,
  FramePhase,
  serializeSASLInitialResponse,
  serializeSASLResponse,
  serializeSSLRequest,
  serializeStartupMessage,
} from '@tenantgate/wire';
import { NO_LIMITS, PASSWORD, scratchDir, startCertBackend, startGateway } from '../gateway/harness.ts';

const CASES = Number(process.env.FUZZ_CASES ?? 5_000);
const SEED = Number(process.env.FUZZ_SEED ?? Date.now() % 2 ** 31);
/** Cases in flight at once. */
const CONCURRENCY = 64;
/** Short phase timeouts, so cases that stop halfway end quickly. */
const PHASE_TIMEOUT_MS = 300;
/** A case the gateway has not closed by then has hung. */
const CASE_LIMIT_MS = 5_000;

const startup = (parameters: [string, string][], minorVersion = 0) =>
  serializeStartupMessage({ minorVersion, parameters: new Map(parameters), protocolOptions: new Map() });
const VALID_STARTUP = startup([
  ['user', 'app'],
  ['database', 'app'],
  ['options', '-c tenant=acme'],
]);
const PROXY_V2_SIGNATURE = Buffer.from('0d0a0d0a000d0a515549540a', 'hex');
const PROXY_V1 = Buffer.from('PROXY TCP4 192.0.2.1 192.0.2.2 5000 5432\r\n', 'latin1');

const bytes = (max: number) => fc.uint8Array({ maxLength: max }).map((b) => Buffer.from(b));

/** `base` with some bytes flipped, cut short, or extended. */
function mutated(base: Buffer): fc.Arbitrary<Buffer> {
  return fc
    .record({
      flips: fc.array(fc.record({ at: fc.nat(), value: fc.integer({ min: 0, max: 255 }) }), { maxLength: 4 }),
      cut: fc.option(fc.nat(), { nil: undefined }),
      tail: bytes(32),
    })
    .map(({ flips, cut, tail }) => {
      const copy = Buffer.from(base);
      for (const { at, value } of flips) copy[at % copy.length] = value;
      const kept = cut === undefined ? copy : copy.subarray(0, cut % (copy.length + 1));
      return Buffer.concat([kept, tail]);
    });
}

/** One client: the bytes it sends, in the pieces it sends them. */
const clientBytes: fc.Arbitrary<Buffer[]> = fc.oneof(
  bytes(300).map((b) => [b]),
  mutated(VALID_STARTUP).map((b) => [b]),
  fc.tuple(fc.constant(serializeSSLRequest()), bytes(64)).map(([ssl, extra]) => [Buffer.concat([ssl, extra])]),
  fc.tuple(fc.constant(Buffer.from([0x16, 0x03, 0x01])), bytes(200)).map(([record, rest]) => [Buffer.concat([record, rest])]),
  mutated(Buffer.concat([PROXY_V2_SIGNATURE, Buffer.from([0x21, 0x11, 0x00, 0x0c]), Buffer.alloc(12, 1), VALID_STARTUP])).map((b) => [b]),
  mutated(Buffer.concat([PROXY_V1, VALID_STARTUP])).map((b) => [b]),
  // A valid startup, then SCRAM messages that are random or mutated.
  fc
    .oneof(
      bytes(120).map((data) => serializeSASLInitialResponse('SCRAM-SHA-256', data)),
      mutated(serializeSASLInitialResponse('SCRAM-SHA-256', Buffer.from('n,,n=app,r=abcdefghijklmnop'))),
      fc
        .tuple(fc.constant(serializeSASLInitialResponse('SCRAM-SHA-256', Buffer.from('n,,n=app,r=abcdefghijklmnop'))), bytes(120))
        .map(([first, final]) => Buffer.concat([first, serializeSASLResponse(final)])),
      bytes(120),
    )
    .map((auth) => [VALID_STARTUP, auth]),
);

interface Outcome {
  readonly received: Buffer;
  readonly closed: boolean;
}

function runCase(port: number, pieces: readonly Buffer[]): Promise<Outcome> {
  return new Promise((resolve) => {
    const socket = connectTcp({ port, host: '127.0.0.1' });
    const chunks: Buffer[] = [];
    const timer = setTimeout(() => {
      socket.destroy();
      resolve({ received: Buffer.concat(chunks), closed: false });
    }, CASE_LIMIT_MS);
    socket.on('error', () => {});
    socket.on('data', (chunk: Buffer) => chunks.push(chunk));
    socket.once('close', () => {
      clearTimeout(timer);
      resolve({ received: Buffer.concat(chunks), closed: true });
    });
    socket.once('connect', async () => {
      for (const piece of pieces) {
        if (socket.destroyed) return;
        socket.write(piece);
        await new Promise((next) => setTimeout(next, 5));
      }
    });
  });
}

/** Why `received` is not what PostgreSQL could send before closing, or undefined when it is. */
function badAnswer(received: Buffer): string | undefined {
  if (received.length === 0) return undefined;
  // One-byte answers to SSLRequest and GSSENCRequest come first; a TLS alert record (the TLS
  // layer refused) may follow an 'S'.
  let rest: Buffer = received;
  for (let i = 0; i < 2 && (rest[0] === 0x53 || rest[0] === 0x4e); i++) rest = rest.subarray(1);
  if (rest.length === 0 || rest[0] === 0x15) return undefined;
  const decoder = new FrameDecoder({ phase: FramePhase.Normal });
  decoder.push(rest);
  let last: number | undefined;
  try {
    for (let frame = decoder.next(); frame !== null; frame = decoder.next()) last = frame[0];
  } catch (error) {
    return `unframed bytes: ${(error as Error).message}`;
  }
  if (decoder.bufferedBytes > 0) return 'a partial message before the close';
  if (last !== 0x45) return `the last message was '${String.fromCharCode(last ?? 0)}', not an ErrorResponse`;
  return undefined;
}

test('the answer check accepts only what PostgreSQL could send before closing', () => {
  const error = Buffer.from('450000000a534641544100', 'hex');
  assert.equal(badAnswer(Buffer.alloc(0)), undefined);
  assert.equal(badAnswer(error), undefined);
  assert.equal(badAnswer(Buffer.concat([Buffer.from('N'), Buffer.from('S'), Buffer.from([0x15, 3, 3, 0, 2, 2, 40])])), undefined);
  assert.match(badAnswer(Buffer.from('520000000800000000', 'hex')) ?? '', /not an ErrorResponse/, 'an AuthenticationOk last');
  assert.match(badAnswer(error.subarray(0, 6)) ?? '', /partial/);
  assert.ok(badAnswer(Buffer.from('garbage bytes')) !== undefined);
});

/** Open sockets of this process (the gateway's and the clients'), from /proc. */
function openSockets(): number {
  return readdirSync('/proc/self/fd').filter((fd) => {
    try {
      return readlinkSync(`/proc/self/fd/${fd}`).startsWith('socket:');
    } catch {
      return false;
    }
  }).length;
}

test(`${CASES} fuzzed clients: each ends in a close with a valid answer, nothing crashes or leaks (seed ${SEED})`, async (t) => {
  const pki = await createTestPki();
  const dir = scratchDir(t, 'gw-fuzz');
  const backend = await startCertBackend(t, pki);
  const gateways: Gateway[] = [];
  for (const proxyProtocol of ['off', 'optional'] as const) {
    gateways.push(
      await startGateway(t, {
        pki,
        dir,
        tenants: [
          {
            id: 'acme',
            backend: { host: '127.0.0.1', port: backend.port },
            roles: [{ name: 'app', password: PASSWORD }],
            limits: NO_LIMITS,
          },
        ],
        settings: { allowPlaintext: true, proxyProtocol, handshakeTimeoutMs: PHASE_TIMEOUT_MS, authTimeoutMs: PHASE_TIMEOUT_MS },
      }),
    );
  }
  const before = openSockets();
  const cases = fc.sample(fc.tuple(fc.nat(1), clientBytes), { numRuns: CASES, seed: SEED });
  const failures: string[] = [];
  let next = 0;
  const worker = async () => {
    while (next < cases.length) {
      const [which, pieces] = cases[next++]!;
      const outcome = await runCase(gateways[which]!.address.port, pieces);
      const problem = outcome.closed ? badAnswer(outcome.received) : `not closed within ${CASE_LIMIT_MS} ms`;
      if (problem !== undefined && failures.length < 10) {
        failures.push(
          `${problem}; sent ${Buffer.concat(pieces).toString('hex').slice(0, 200)}; got ${outcome.received.toString('hex').slice(0, 200)}`,
        );
      }
    }
  };
  await Promise.all(Array.from({ length: CONCURRENCY }, worker));
  assert.deepEqual(failures, [], `seed ${SEED}`);
  // Every socket of the cases is gone on both sides (a little time for the last closes).
  for (let i = 0; i < 50 && openSockets() > before; i++) await new Promise((resolve) => setTimeout(resolve, 100));
  assert.ok(openSockets() <= before, `${Math.max(0, openSockets() - before)} sockets left open`);
  for (const gateway of gateways) assert.equal(gateway.activeSessions, 0);
  t.diagnostic(`${CASES} cases (seed ${SEED}): ${failures.length} failures, ${Math.max(0, openSockets() - before)} sockets left open`);
});
