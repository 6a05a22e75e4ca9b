// A stand-in for the control plane's `GET /v1/routes/:id` (route-cache.ts contract), for fault
// injection only: a node:http server on port 0 of 127.0.0.1 that serves routes from a map,
// counts requests, and can be told to fail the next requests (an HTTP status, a reset socket, no
// answer at all, or an answer held until the test releases it), or to stop listening.
// `applyWrite` does to Redis what the control plane does after each committed write, with the
// control plane's own dropCachedRoute.
import { once } from 'node:events';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Redis } from 'ioredis';
import { dropCachedRoute } from '@tenantgate/control-plane';
import { encodeInvalidation, INVALIDATION_CHANNEL, type TenantRoute } from '@tenantgate/tenancy';

export const GATEWAY_TOKEN = 'gateway-token-for-tests';

/** What the next request gets instead of the route. */
export type Fault = { kind: 'status'; status: number } | { kind: 'reset' } | { kind: 'hang' } | { kind: 'hold'; held: Held };

export interface Held {
  /** Resolves when the request has arrived (its answer is taken from the map at that moment). */
  readonly arrived: Promise<void>;
  /** Sends the answer taken at arrival. */
  release(): void;
}

export interface ControlPlaneDouble {
  readonly url: string;
  readonly routes: Map<string, TenantRoute>;
  /** Tenant ids of the requests received, in order (failed ones included). */
  readonly requests: string[];
  count(tenantId: string): number;
  /** The next requests get these faults, one each, in order. */
  failNext(...faults: Fault[]): void;
  /** Every request gets this fault until cleared with undefined. */
  failAlways(fault: Fault | undefined): void;
  /** Every request for this tenant gets this fault until cleared with undefined. */
  failFor(tenantId: string, fault: Fault | undefined): void;
  /** Holds the answer to the next request until `release()`. */
  holdNext(): Held;
  /** Stops listening and drops every connection: clients get ECONNREFUSED. */
  stop(): Promise<void>;
  /** Listens again, on the same port. */
  start(): Promise<void>;
}

export async function startControlPlaneDouble(): Promise<ControlPlaneDouble & AsyncDisposable> {
  const routes = new Map<string, TenantRoute>();
  const requests: string[] = [];
  const queued: Fault[] = [];
  let always: Fault | undefined;
  const byTenant = new Map<string, Fault>();
  const hanging = new Set<ServerResponse>();

  const server = createServer((req, res) => {
    const id = /^\/v1\/routes\/([^/?]+)$/.exec(req.url ?? '')?.[1];
    if (id !== undefined) requests.push(decodeURIComponent(id));
    const fault = (id === undefined ? undefined : byTenant.get(decodeURIComponent(id))) ?? queued.shift() ?? always;
    if (fault !== undefined) return inject(fault, req, res, answer(req, id));
    answer(req, id)(res);
  });

  function answer(req: IncomingMessage, id: string | undefined): (res: ServerResponse) => void {
    if (req.headers.authorization !== `Bearer ${GATEWAY_TOKEN}`)
      return json(401, { code: 'TG_ERR_UNAUTHORIZED', message: 'bad token', details: {} });
    const route = id === undefined ? undefined : routes.get(decodeURIComponent(id));
    if (route === undefined) return json(404, { code: 'TG_ERR_TENANT_NOT_FOUND', message: 'no such tenant', details: {} });
    return json(200, structuredClone(route));
  }

  function inject(fault: Fault, req: IncomingMessage, res: ServerResponse, send: (res: ServerResponse) => void): void {
    switch (fault.kind) {
      case 'status':
        return json(fault.status, { code: 'TG_ERR_INJECTED', message: 'injected failure', details: {} })(res);
      case 'reset':
        req.socket.destroy();
        return;
      case 'hang':
        hanging.add(res);
        return;
      case 'hold':
        (fault.held as HeldInternal).arrive(() => send(res));
        return;
    }
  }

  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as AddressInfo;

  const stop = async () => {
    if (!server.listening) return;
    for (const res of hanging) res.destroy();
    hanging.clear();
    const closed = once(server, 'close');
    server.close();
    server.closeAllConnections();
    await closed;
  };

  return {
    url: `http://127.0.0.1:${port}`,
    routes,
    requests,
    count: (tenantId) => requests.filter((id) => id === tenantId).length,
    failNext: (...faults) => queued.push(...faults),
    failAlways: (fault) => {
      always = fault;
    },
    failFor: (tenantId, fault) => {
      if (fault === undefined) byTenant.delete(tenantId);
      else byTenant.set(tenantId, fault);
    },
    holdNext: () => {
      const held = createHeld();
      queued.push({ kind: 'hold', held });
      return held;
    },
    stop,
    start: async () => {
      if (server.listening) return;
      server.listen(port, '127.0.0.1');
      await once(server, 'listening');
    },
    [Symbol.asyncDispose]: stop,
  };
}

interface HeldInternal extends Held {
  arrive(send: () => void): void;
}

function createHeld(): HeldInternal {
  let arrived!: () => void;
  let send: (() => void) | undefined;
  let released = false;
  return {
    arrived: new Promise<void>((resolve) => {
      arrived = resolve;
    }),
    arrive(s) {
      send = s;
      arrived();
      if (released) s();
    },
    release() {
      released = true;
      send?.();
    },
  };
}

function json(status: number, body: unknown): (res: ServerResponse) => void {
  return (res) => {
    res.writeHead(status, { 'content-type': 'application/json' });
    res.end(JSON.stringify(body));
  };
}

/**
 * What the control plane runs after committing a write (route-cache.ts): raise the floor to the
 * write's version, drop the cached route, announce it (version null for a deletion, which takes
 * a version of the sequence too). `publish: false` plays a message that never arrives.
 */
export async function applyWrite(
  redis: Redis,
  tenantId: string,
  write: { version: number; deleted?: boolean; publish?: boolean },
): Promise<void> {
  const multi = dropCachedRoute(redis.multi(), tenantId, write.version);
  if (write.publish ?? true)
    multi.publish(INVALIDATION_CHANNEL, encodeInvalidation({ id: tenantId, version: write.deleted ? null : write.version }));
  await multi.exec();
}
