import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { test, type TestContext } from 'node:test';
import { ControlPlaneClient, type ControlPlaneClientOptions } from './control-plane-client.ts';
import { ControlPlaneResponseError, ControlPlaneStatusError, ControlPlaneTransportError } from './errors.ts';
import { createNotifier, type ControlPlaneRequestEvent } from './observer.ts';
import { UNKNOWN_TENANT } from './route-answer.ts';
import { testRoute } from './testing/route.ts';

type Handler = (req: IncomingMessage, res: ServerResponse, n: number) => void;

/** A local HTTP server on port 0 that answers with `handler`, counting requests. */
async function server(t: TestContext, handler: Handler) {
  const requests: IncomingMessage[] = [];
  const http = createServer((req, res) => {
    requests.push(req);
    handler(req, res, requests.length);
  });
  http.listen(0, '127.0.0.1');
  await once(http, 'listening');
  t.after(() => {
    http.closeAllConnections();
    http.close();
  });
  const { port } = http.address() as AddressInfo;
  return { url: `http://127.0.0.1:${port}`, requests, http };
}

function client(t: TestContext, url: string, options: Partial<ControlPlaneClientOptions> = {}) {
  const events: ControlPlaneRequestEvent[] = [];
  const cp = new ControlPlaneClient({
    url,
    token: 'gw-token',
    requestTimeoutMs: 5_000,
    connectTimeoutMs: 5_000,
    retries: 2,
    backoff: { baseMs: 1, maxMs: 5 },
    connections: 4,
    keepAliveTimeoutMs: 1_000,
    maxResponseBytes: 64 * 1024,
    notifier: createNotifier({ controlPlaneRequest: (event) => events.push(event) }),
    ...options,
  });
  t.after(() => cp.close());
  return { cp, events };
}

const json = (res: ServerResponse, status: number, body: unknown) => {
  res.writeHead(status, { 'content-type': 'application/json' });
  res.end(JSON.stringify(body));
};

const never = new AbortController().signal;

test('GET <base>/v1/routes/:id with the bearer token; 200 is the route', async (t) => {
  const cp = await server(t, (_req, res) => json(res, 200, testRoute('acme', { version: 4 })));
  const { cp: c, events } = client(t, `${cp.url}/api/`);
  const answer = await c.fetchRoute('acme', never);
  assert.deepEqual(answer, { kind: 'found', route: testRoute('acme', { version: 4 }) });
  assert.equal(cp.requests[0]?.url, '/api/v1/routes/acme');
  assert.equal(cp.requests[0]?.headers.authorization, 'Bearer gw-token');
  assert.equal(events.length, 1);
  assert.equal(events[0]?.status, 200);
  assert.equal(events[0]?.attempt, 0);
  assert.ok((events[0]?.durationSeconds ?? -1) >= 0);
});

test('404 with the error body is an unknown tenant; a bare 404 is an error', async (t) => {
  const cp = await server(t, (req, res) => {
    if (req.url?.endsWith('/ghost')) json(res, 404, { code: 'TG_ERR_TENANT_NOT_FOUND', message: 'no tenant "ghost"', details: {} });
    else {
      res.writeHead(404, { 'content-type': 'text/html' });
      res.end('<h1>Not Found</h1>');
    }
  });
  const { cp: c } = client(t, cp.url);
  assert.equal(await c.fetchRoute('ghost', never), UNKNOWN_TENANT);
  await assert.rejects(c.fetchRoute('acme', never), (error) => error instanceof ControlPlaneStatusError && error.statusCode === 404);
  const plainJson404 = await server(t, (_req, res) => json(res, 404, { message: 'Route GET:/v1/routes/acme not found' }));
  await assert.rejects(
    client(t, plainJson404.url).cp.fetchRoute('acme', never),
    (error) => error instanceof ControlPlaneStatusError && error.statusCode === 404,
  );
  // The control plane's own 404 for a path it does not serve (a wrong base path) is not "no such tenant".
  const wrongPath = await server(t, (_req, res) =>
    json(res, 404, { code: 'TG_ERR_NOT_FOUND', message: 'no route GET /x/v1/routes/acme', details: {} }),
  );
  await assert.rejects(
    client(t, wrongPath.url).cp.fetchRoute('acme', never),
    (error) => error instanceof ControlPlaneStatusError && error.statusCode === 404,
  );
});

test('an HTTP status is an answer: 401, 403, 500 and 503 are not retried', async (t) => {
  for (const status of [401, 403, 500, 503]) {
    const cp = await server(t, (_req, res) => json(res, status, { code: 'X', message: 'no' }));
    const { cp: c, events } = client(t, cp.url);
    await assert.rejects(c.fetchRoute('acme', never), (error) => error instanceof ControlPlaneStatusError && error.statusCode === status);
    assert.equal(cp.requests.length, 1, String(status));
    assert.deepEqual(
      events.map((e) => e.status),
      [status],
    );
  }
});

test('a token refusal says so, without the token', async (t) => {
  const cp = await server(t, (_req, res) => json(res, 401, { code: 'TG_ERR_UNAUTHORIZED', message: 'bad token' }));
  await assert.rejects(
    client(t, cp.url).cp.fetchRoute('acme', never),
    (error: Error) => /refused the gateway token/.test(error.message) && !error.message.includes('gw-token'),
  );
});

test('garbage is an error and is not retried', async (t) => {
  const bodies = [
    'not json',
    JSON.stringify(testRoute('other')),
    JSON.stringify({ ...testRoute('acme'), version: 0 }),
    JSON.stringify({ id: 'acme' }),
  ];
  for (const body of bodies) {
    const cp = await server(t, (_req, res) => res.end(body));
    await assert.rejects(client(t, cp.url).cp.fetchRoute('acme', never), ControlPlaneResponseError, body);
    assert.equal(cp.requests.length, 1);
  }
});

test('a body over the size limit is an error', async (t) => {
  const cp = await server(t, (_req, res) => json(res, 200, { ...testRoute('acme'), padding: 'x'.repeat(100_000) }));
  await assert.rejects(client(t, cp.url).cp.fetchRoute('acme', never), ControlPlaneResponseError);
});

test('a reset connection is retried with backoff, then the route comes', async (t) => {
  const cp = await server(t, (req, res, n) => {
    if (n <= 2) req.socket.destroy();
    else json(res, 200, testRoute('acme'));
  });
  const { cp: c, events } = client(t, cp.url);
  assert.equal((await c.fetchRoute('acme', never)).kind, 'found');
  assert.equal(cp.requests.length, 3);
  assert.deepEqual(
    events.map((e) => [e.attempt, e.status, e.error?.constructor.name]),
    [
      [0, 'error', 'ControlPlaneTransportError'],
      [1, 'error', 'ControlPlaneTransportError'],
      [2, 200, undefined],
    ],
  );
});

test('retries end: the transport error comes out after 1 + retries attempts', async (t) => {
  const cp = await server(t, (req) => req.socket.destroy());
  const { cp: c } = client(t, cp.url, { retries: 3 });
  await assert.rejects(c.fetchRoute('acme', never), ControlPlaneTransportError);
  assert.equal(cp.requests.length, 4);
});

test('no answer within the request timeout is a transport failure, retried', async (t) => {
  const cp = await server(t, (_req, res, n) => {
    if (n > 1) json(res, 200, testRoute('acme'));
    // else: hold the request; the client gives up.
  });
  const { cp: c, events } = client(t, cp.url, { requestTimeoutMs: 300 });
  assert.equal((await c.fetchRoute('acme', never)).kind, 'found');
  assert.equal(cp.requests.length, 2);
  assert.match(events[0]?.error?.message ?? '', /no answer within 300 ms/);
});

test('a refused connection is a transport failure', async (t) => {
  const cp = await server(t, () => {});
  const url = cp.url;
  cp.http.close();
  await once(cp.http, 'close');
  const { cp: c, events } = client(t, url, { retries: 1 });
  await assert.rejects(
    c.fetchRoute('acme', never),
    (error: Error) => error instanceof ControlPlaneTransportError && /ECONNREFUSED/.test(error.message),
  );
  assert.deepEqual(
    events.map((e) => e.status),
    ['error', 'error'],
  );
});

test('aborting ends the request and the retries at once, with the signal reason', async (t) => {
  const cp = await server(t, () => {});
  const { cp: c } = client(t, cp.url);
  const controller = new AbortController();
  const pending = c.fetchRoute('acme', controller.signal);
  while (cp.requests.length === 0) await new Promise((resolve) => setTimeout(resolve, 5));
  const reason = new Error('closing');
  controller.abort(reason);
  await assert.rejects(pending, (error) => error === reason);
  assert.equal(cp.requests.length, 1);
});
