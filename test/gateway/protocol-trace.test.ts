// The protocol trace (docs/architecture.md, "Protocol trace"): the admin port traces the next
// connections of a tenant or one live session. A traced connection's log holds each of its
// messages in order, in both directions, with no password, SCRAM proof, nonce or cancel key in
// it and no query text unless asked for; an untraced session logs no message lines.
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { runPsql } from '@tenantgate/testing';
import { connectPg, PASSWORD, psqlSettings, tenantHost } from './harness.ts';
import { adminCall, adminGatewayFixture, type AdminGatewayFixture, type GatewayProcess, type LogLine } from './app-processes.ts';

/** Only to turn a hang into a failure; no test waits this long when it passes. */
const PATIENCE_MS = 20_000;

function admin(gateway: GatewayProcess, method: string, path: string, body?: unknown) {
  return adminCall(gateway, method, path, { body });
}

function traceFixture(t: TestContext, workers = 1): Promise<AdminGatewayFixture> {
  return adminGatewayFixture(t, { GATEWAY_WORKERS: String(workers) });
}

/** The `conn` of the connection whose trace ended (the first such line after `after` lines). */
async function endedTrace(gateway: GatewayProcess, after: number): Promise<LogLine> {
  const deadline = Date.now() + PATIENCE_MS;
  for (;;) {
    const line = gateway.lines.slice(after).find((l) => l.msg === 'protocol trace ended');
    if (line !== undefined) return line;
    if (Date.now() > deadline) assert.fail('no trace ended');
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

function messagesOf(gateway: GatewayProcess, conn: unknown): LogLine[] {
  return gateway.lines.filter((line) => line.conn === conn && line.msg === 'protocol message');
}

/** `dir type` of each message, in order. */
function sequence(lines: readonly LogLine[]): string[] {
  return lines.map((line) => `${String(line.dir)} ${String(line.type)}`);
}

test("a tenant's next connection is traced message by message, in order, with every secret redacted", async (t) => {
  const fixture = await traceFixture(t);
  const { gateway } = fixture;
  const armed = await admin(gateway, 'POST', '/tenants/acme/trace', { connections: 1, seconds: 60 });
  assert.equal(armed.status, 200, JSON.stringify(armed.body));
  assert.deepEqual({ ...(armed.body.trace as object), until: undefined }, { until: undefined, includeQueries: false, connections: 1 });
  assert.equal(armed.body.processes, 1);

  const before = gateway.lines.length;
  const run = await runPsql(psqlSettings(gateway, fixture.caFile, 'acme'), {
    password: PASSWORD,
    home: fixture.dir,
    sql: "select 'hidden-query-text'",
  });
  assert.equal(run.code, 0, run.stderr);
  const ended = await endedTrace(gateway, before);
  assert.match(String(ended.reason), /^session closed/);
  const lines = messagesOf(gateway, ended.conn);
  const seen = sequence(lines);
  // The edge's SCRAM, the backend's start-up (certificate login: no password asked), the
  // hand-over, then the spliced query and the client's goodbye.
  const expectedStart = [
    'client>gateway StartupMessage',
    'gateway>client AuthenticationSASL',
    'client>gateway SASLInitialResponse',
    'gateway>client AuthenticationSASLContinue',
    'client>gateway SASLResponse',
    'gateway>client AuthenticationSASLFinal',
    'gateway>backend StartupMessage',
    'backend>gateway AuthenticationOk',
  ];
  assert.deepEqual(seen.slice(0, expectedStart.length), expectedStart);
  const handOver = seen.indexOf('gateway>client AuthenticationOk');
  assert.ok(handOver > seen.indexOf('backend>gateway ReadyForQuery'), seen.join('\n'));
  assert.deepEqual(
    seen.slice(handOver).filter((s) => !s.endsWith('ParameterStatus')),
    [
      'gateway>client AuthenticationOk',
      'gateway>client BackendKeyData',
      'gateway>client ReadyForQuery',
      'client>backend Query',
      'backend>client RowDescription',
      'backend>client DataRow',
      'backend>client CommandComplete',
      'backend>client ReadyForQuery',
      'client>backend Terminate',
    ],
  );
  const startup = lines[0] as LogLine & { parameters: Record<string, string> };
  assert.equal(startup.parameters.user, 'app');
  assert.equal((lines.find((l) => l.type === 'CommandComplete') as LogLine).tag, 'SELECT 1');

  // No secret anywhere in the trace: password, SCRAM attributes (nonce, proof, signature), keys, query text.
  const text = lines.map((line) => JSON.stringify(line)).join('\n');
  for (const secret of [PASSWORD, 'hidden-query-text', 'r=', 'p=', 'v=', 'c=biws', 'n,,n=']) assert.ok(!text.includes(secret), secret);
  for (const line of lines.filter((l) => l.type === 'BackendKeyData')) assert.equal(line.secretKey, '[redacted]');
  for (const line of lines.filter((l) => String(l.type).startsWith('SASL'))) assert.equal(line.data, '[redacted]');

  // The trace was for one connection: the next one logs no message line.
  const afterTrace = gateway.lines.length;
  const untraced = await runPsql(psqlSettings(gateway, fixture.caFile, 'acme'), { password: PASSWORD, home: fixture.dir });
  assert.equal(untraced.code, 0, untraced.stderr);
  const closed = await gateway.logLine(
    (l) => l.msg === 'session closed' && l.conn !== ended.conn && gateway.lines.indexOf(l) >= afterTrace,
  );
  assert.deepEqual(messagesOf(gateway, closed.conn), []);
});

test('a live session is traced from its next messages on, with its query text when asked for', async (t) => {
  const fixture = await traceFixture(t);
  const { gateway, pki } = fixture;
  const client = await connectPg(t, gateway, pki, { servername: tenantHost('globex'), database: 'app' });
  await client.query("select 'before the trace'");
  const listed = await admin(gateway, 'GET', '/sessions?tenant=globex');
  const [session] = listed.body.sessions as { id: string }[];
  assert.ok(session !== undefined);
  const traced = await admin(gateway, 'POST', `/sessions/${session.id}/trace`, { seconds: 30, includeQueries: true });
  assert.equal(traced.status, 200, JSON.stringify(traced.body));
  assert.equal(traced.body.id, session.id);
  await client.query('select $1::text as v', ['bound-value']);
  await client.query("select 'traced query'");
  const started = await gateway.logLine((l) => l.msg === 'protocol trace started' && l.spliced === true);
  await client.end();
  const ended = await endedTrace(gateway, gateway.lines.indexOf(started));
  assert.equal(ended.conn, started.conn);
  const lines = messagesOf(gateway, started.conn);
  assert.ok(!sequence(lines).some((s) => s.includes('gateway')), 'spliced messages only');
  const parse = lines.find((l) => l.type === 'Parse');
  assert.equal(parse?.query, 'select $1::text as v');
  assert.equal(lines.find((l) => l.type === 'Bind')?.parameters, 1);
  assert.ok(!lines.some((l) => JSON.stringify(l).includes('bound-value')), 'bound values are never shown');
  assert.ok(lines.some((l) => l.type === 'Query' && l.query === "select 'traced query'"));
  assert.ok(!lines.some((l) => JSON.stringify(l).includes('before the trace')));
  assert.equal(lines.at(-1)?.type, 'Terminate');
});

test('trace requests: unknown sessions are 404, bad bodies 400, and a trace reaches every worker', async (t) => {
  const fixture = await traceFixture(t, 2);
  const { gateway } = fixture;
  assert.equal((await admin(gateway, 'POST', '/sessions/1-999999/trace')).status, 404);
  assert.equal((await admin(gateway, 'POST', '/tenants/ACME!/trace')).status, 404);
  for (const body of [
    { seconds: 0 },
    { seconds: 3601 },
    { includeQueries: 'yes' },
    { connections: 0 },
    { everything: true },
    'not json',
    '[]',
  ]) {
    const reply = await admin(gateway, 'POST', '/tenants/acme/trace', body);
    assert.equal(reply.status, 400, JSON.stringify(body));
  }
  assert.equal((await admin(gateway, 'POST', '/sessions/1-1/trace', { connections: 2 })).status, 400, 'connections is for tenants');
  assert.equal((await admin(gateway, 'GET', '/tenants/acme/trace')).status, 405);
  // Both workers take the trace once both listen (the primary logs it listens after the first).
  const deadline = Date.now() + PATIENCE_MS;
  for (;;) {
    const armed = await admin(gateway, 'POST', '/tenants/acme/trace', { connections: 2 });
    assert.equal(armed.status, 200);
    if (armed.body.processes === 2) break;
    assert.ok(Date.now() < deadline, 'the second worker never took the trace');
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  const before = gateway.lines.length;
  const run = await runPsql(psqlSettings(gateway, fixture.caFile, 'acme'), { password: PASSWORD, home: fixture.dir });
  assert.equal(run.code, 0, run.stderr);
  const ended = await endedTrace(gateway, before);
  assert.ok(messagesOf(gateway, ended.conn).length > 10);
});
