import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { test } from 'node:test';
import { serializeAuthenticationSASL, serializeReadyForQuery, serializeSASLInitialResponse, serializeTerminate } from '@tenantgate/wire';
import { createLogger } from './logger.ts';
import { ProtocolTrace, TenantTraces, TRACE_MAX_MESSAGES } from './protocol-trace.ts';

/** A logger at `info` (the trace writes its debug lines anyway) whose lines land in `lines`. */
function capture(): { log: ReturnType<typeof createLogger>; lines: Record<string, unknown>[] } {
  const lines: Record<string, unknown>[] = [];
  const destination = new Writable({
    write(chunk: Buffer, _encoding, done) {
      for (const line of chunk.toString().split('\n')) if (line !== '') lines.push(JSON.parse(line) as Record<string, unknown>);
      done();
    },
  });
  return { log: createLogger({ level: 'info', destination }), lines };
}

const LATER = () => ({ until: Date.now() + 60_000, includeQueries: true });

function query(text: string): Buffer {
  const body = Buffer.from(`${text}\0`);
  const header = Buffer.alloc(5);
  header[0] = 0x51; // Q
  header.writeUInt32BE(body.length + 4, 1);
  return Buffer.concat([header, body]);
}

function messages(lines: readonly Record<string, unknown>[]): string[] {
  return lines
    .filter((l) => l.msg === 'protocol message')
    .map((l) => `${String(l.dir)} ${String(l.type)}${l.query ? ` ${String(l.query)}` : ''}`);
}

test('messages split at every point across chunks are each one line, in order', () => {
  const stream = Buffer.concat([query('select 1'), query('select 22'), serializeTerminate()]);
  for (let cut = 0; cut <= stream.length; cut++) {
    for (let second = cut; second <= stream.length; second += 3) {
      const { log, lines } = capture();
      const trace = new ProtocolTrace(log, LATER(), true);
      trace.fromClient(stream.subarray(0, cut), 0);
      trace.fromClient(stream.subarray(cut, second), -1);
      trace.fromClient(stream.subarray(second), -1);
      trace.end('done');
      assert.deepEqual(
        messages(lines),
        ['client>backend Query select 1', 'client>backend Query select 22', 'client>backend Terminate'],
        `${cut}/${second}`,
      );
    }
  }
});

test('the authentication phase names the client p message by the request before it', () => {
  const { log, lines } = capture();
  const trace = new ProtocolTrace(log, LATER(), false);
  trace.startup(new Map([['user', 'app']]), 2);
  trace.client.wrote(serializeAuthenticationSASL(['SCRAM-SHA-256']));
  trace.client.read(serializeSASLInitialResponse('SCRAM-SHA-256', Buffer.from('n,,n=,r=abc')));
  trace.end('done');
  assert.deepEqual(messages(lines), [
    'client>gateway StartupMessage',
    'gateway>client AuthenticationSASL',
    'client>gateway SASLInitialResponse',
  ]);
  assert.deepEqual(lines[1]?.parameters, { user: 'app' });
  assert.equal(lines[1]?.protocol, '3.2');
  assert.ok(lines.every((l) => !JSON.stringify(l).includes('r=abc')));
});

test('started on a live session, each stream waits for a message boundary', () => {
  const { log, lines } = capture();
  const trace = new ProtocolTrace(log, LATER(), true);
  const ready = serializeReadyForQuery('I');
  // The backend's tail of a message, then (offset known) ReadyForQuery; the client's tail, then a whole Query.
  trace.fromBackend(Buffer.concat([Buffer.from('tail-of-a-row'), ready]), 13);
  trace.fromClient(Buffer.from('ect 1\0'), -1);
  trace.fromClient(query('select 2'), -1);
  trace.fromBackend(Buffer.from([0x44, 0, 0]), -1);
  trace.end('done');
  assert.deepEqual(messages(lines), ['backend>client ReadyForQuery', 'client>backend Query select 2']);
});

test('a trace ends by itself: at its message limit, and at its time', async () => {
  const { log, lines } = capture();
  const trace = new ProtocolTrace(log, LATER(), true);
  let ended = 0;
  trace.onEnd = () => ended++;
  const chunk = Buffer.concat(Array.from({ length: 100 }, () => serializeTerminate()));
  for (let i = 0; i < TRACE_MAX_MESSAGES / 100 + 5; i++) trace.fromClient(chunk, 0);
  assert.equal(trace.active, false);
  assert.equal(ended, 1);
  assert.equal(messages(lines).length, TRACE_MAX_MESSAGES);
  assert.equal(lines.at(-1)?.reason, 'message limit');

  const timed = capture();
  const short = new ProtocolTrace(timed.log, { until: Date.now() + 20, includeQueries: false }, true);
  await new Promise((resolve) => setTimeout(resolve, 60));
  assert.equal(short.active, false);
  assert.equal(timed.lines.at(-1)?.reason, 'time');
});

test("a tenant's trace is taken by its next connections, then gone; an expired one by none", () => {
  const traces = new TenantTraces();
  assert.equal(traces.take('acme'), undefined);
  traces.arm('acme', 2, LATER());
  assert.notEqual(traces.take('acme'), undefined);
  assert.equal(traces.take('globex'), undefined);
  assert.notEqual(traces.take('acme'), undefined);
  assert.equal(traces.take('acme'), undefined);
  traces.arm('acme', 5, { until: Date.now() - 1, includeQueries: false });
  assert.equal(traces.take('acme'), undefined);
});
