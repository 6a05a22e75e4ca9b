// What the control plane tests share: a store of either kind (an embedded PGlite in a temp
// directory, or a real PostgreSQL), the app built on it and listening on a free port, and a
// small HTTP client over fetch.
import type { TestContext } from 'node:test';
import type { FastifyInstance } from 'fastify';
import type { Redis } from 'ioredis';
import pg from 'pg';
import {
  buildApp,
  createPostgresDatabase,
  createRedisClient,
  openPgliteDatabase,
  type BuildAppOptions,
  type Database,
} from '@tenantgate/control-plane';
import { createTempDir, removeTempDir, startPostgres, type PostgresServer } from '@tenantgate/testing';

export const ADMIN_TOKEN = 'admin-token-0123456789abcdef';
export const GATEWAY_TOKEN = 'gateway-token-0123456789abcdef';

export type StoreKind = 'pglite' | 'postgres';

/** Where a store lives; `open` gives a new connection (pool or PGlite) to the same data. */
export interface StoreHome {
  readonly kind: StoreKind;
  open(): Promise<Database>;
  /** A second, empty database on the same server (PostgreSQL only), for migration races. */
  emptyDatabaseUrl?(name: string): Promise<string>;
  remove(): Promise<void>;
}

export async function createStoreHome(kind: StoreKind): Promise<StoreHome> {
  if (kind === 'pglite') {
    const dir = createTempDir('control-plane');
    return { kind, open: () => openPgliteDatabase(dir), remove: () => removeTempDir(dir) };
  }
  const server = await startPostgres({
    roles: [{ name: 'cp', password: 'cp-password' }],
    databases: [{ name: 'cp', owner: 'cp' }],
  });
  return {
    kind,
    open: async () => createPostgresDatabase({ connectionString: urlOf(server, 'cp') }),
    async emptyDatabaseUrl(name) {
      await server.sql(`CREATE DATABASE ${pg.escapeIdentifier(name)} OWNER cp`);
      return urlOf(server, name);
    },
    remove: () => server.stop(),
  };
}

function urlOf(server: PostgresServer, database: string): string {
  return `postgres://cp:cp-password@${server.host}:${server.port}/${database}`;
}

export interface RunningApp {
  readonly app: FastifyInstance;
  readonly url: string;
  readonly database: Database;
  readonly redis: Redis | undefined;
  /** Closes the app, then its Redis client and database. */
  close(): Promise<void>;
}

export async function startApp(database: Database, options: { redisUrl?: string } & Partial<BuildAppOptions> = {}): Promise<RunningApp> {
  const redis = options.redisUrl === undefined ? undefined : createRedisClient(options.redisUrl, { maxReconnectDelayMs: 200 });
  const app = buildApp({
    database,
    redis,
    adminTokens: [ADMIN_TOKEN],
    gatewayTokens: [GATEWAY_TOKEN],
    invalidation: { minRetryDelayMs: 20, maxRetryDelayMs: 300, pollIntervalMs: 1000 },
    ...options,
  });
  const url = await app.listen({ host: '127.0.0.1', port: 0 });
  let closed: Promise<void> | undefined;
  return {
    app,
    url,
    database,
    redis,
    close() {
      closed ??= app.close().finally(async () => {
        redis?.disconnect();
        await database.close();
      });
      return closed;
    },
  };
}

/** The control plane on an embedded PGlite store in a temp directory, both gone after the test. */
export async function startTestControlPlane(
  t: TestContext,
  options: { redisUrl?: string } & Partial<BuildAppOptions> = {},
): Promise<RunningApp> {
  const home = await createStoreHome('pglite');
  t.after(() => home.remove());
  const app = await startApp(await home.open(), { migrate: true, allowLocalBackends: true, ...options });
  t.after(() => app.close());
  return app;
}

export interface Reply {
  readonly status: number;
  readonly headers: Headers;
  /** The parsed JSON body (undefined when empty), or the text of a non-JSON body. */
  readonly body: any; // eslint-disable-line @typescript-eslint/no-explicit-any
}

export interface CallOptions {
  /** Default ADMIN_TOKEN; null sends no Authorization header. */
  readonly token?: string | null;
  /** Sent as JSON. */
  readonly json?: unknown;
  /** Sent as is (set content-type in headers). */
  readonly raw?: string | Uint8Array;
  readonly headers?: Record<string, string>;
}

export async function call(base: string, method: string, path: string, options: CallOptions = {}): Promise<Reply> {
  const headers: Record<string, string> = { ...options.headers };
  const token = options.token === undefined ? ADMIN_TOKEN : options.token;
  if (token !== null) headers.authorization ??= `Bearer ${token}`;
  let body: string | Uint8Array | undefined = options.raw;
  if (options.json !== undefined) {
    body = JSON.stringify(options.json);
    headers['content-type'] ??= 'application/json';
  }
  const response = await fetch(new URL(path, base), { method, headers, body });
  const text = await response.text();
  const json = (response.headers.get('content-type') ?? '').includes('json') && text !== '';
  return { status: response.status, headers: response.headers, body: json ? JSON.parse(text) : text || undefined };
}

/** Polls `check` until it returns something other than undefined, or fails after `ms`. */
export async function eventually<T>(what: string, check: () => Promise<T | undefined> | T | undefined, ms = 10_000): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const value = await check();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

/** A minimal valid tenant record. */
export function tenantBody(id: string, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return { id, backend: { host: '10.0.3.17', port: 5432 }, ...extra };
}
