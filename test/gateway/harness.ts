// Shared setup for the gateway's end-to-end tests: real PostgreSQL backends, a static tenants
// file, the gateway built with createGateway on port 0, and the clients that talk to it (pg,
// postgres.js, psql, and raw sockets that speak the wire protocol byte by byte). Every server is
// torn down by the test context that created it, registered right after it starts.
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { writeFile } from 'node:fs/promises';
import { connect as connectTcp, type Socket } from 'node:net';
import { join } from 'node:path';
import type { TestContext } from 'node:test';
import { connect as connectTls, type ConnectionOptions, type TLSSocket } from 'node:tls';
import pg from 'pg';
import postgres from 'postgres';
import {
  ControlPlaneDirectory,
  createGateway,
  createLogger,
  createMetrics,
  TenantsFileDirectory,
  type Gateway,
  type GatewayMetrics,
  type GatewayOptions,
  type GatewaySettings,
  type TenantDirectory,
} from '@tenantgate/gateway';
import type { TenantInput } from '@tenantgate/tenancy';
import {
  conninfo,
  createTempDir,
  removeTempDir,
  requirePsql,
  startPostgres,
  type PostgresServer,
  type StartPostgresOptions,
  type TestPki,
} from '@tenantgate/testing';
import {
  FrameDecoder,
  FramePhase,
  parseBackendMessage,
  serializeSSLRequest,
  type BackendMessage,
  type NoticeFields,
  serializeStartupMessage,
  serializeCancelRequest,
  ScramClientExchange,
  serializeSASLInitialResponse,
  serializeSASLResponse,
} from '@tenantgate/wire';

export const PASSWORD = 'secret-pw';
export const SUFFIX = '.db.example.test';
/** Generous limits: these tests connect often and fast, and the limits are not what they test. */
export const NO_LIMITS = { maxConnections: 10_000, connectsPerSecond: 100_000 } as const;

/** The host name of a tenant under the test suffix. */
export function tenantHost(tenant: string): string {
  return `${tenant}${SUFFIX}`;
}

/** A scratch directory removed after the test. */
export function scratchDir(t: TestContext, what: string): string {
  const dir = createTempDir(what);
  t.after(() => removeTempDir(dir));
  return dir;
}

/** A PostgreSQL with the PKI's backend certificate (unless overridden), stopped after the test. */
export async function startBackend(t: TestContext, pki: TestPki, options: StartPostgresOptions): Promise<PostgresServer> {
  const server = await startPostgres({
    serverCert: pki.backend.chainPem,
    serverKey: pki.backend.keyPem,
    clientCa: pki.ca.certPem,
    ...options,
  });
  t.after(() => server.stop());
  return server;
}

/** A PostgreSQL whose pg_hba logs the gateway's client certificate in as `app`, with a database `app`. */
export function startCertBackend(t: TestContext, pki: TestPki, settings?: StartPostgresOptions['settings']): Promise<PostgresServer> {
  return startBackend(t, pki, {
    hba: ['hostssl all all 127.0.0.1/32 cert'],
    roles: [{ name: 'app' }],
    databases: [{ name: 'app', owner: 'app' }],
    ...(settings === undefined ? {} : { settings }),
  });
}

/** The backend's own SCRAM secret for a role: the gateway must hold the same one. */
export async function roleSecret(backend: PostgresServer, role: string): Promise<string> {
  const [row] = await backend.sql<{ rolpassword: string }>('select rolpassword from pg_authid where rolname = $1', [role]);
  assert.ok(row, `role ${role} exists on the backend`);
  return row.rolpassword;
}

/** A tenant as the tenants file takes it: defaults (status, limits, CIDRs, ...) left out. */
export type TenantEntry = Pick<TenantInput, 'id' | 'backend' | 'roles'> & Partial<TenantInput>;

export interface GatewayFixtureOptions {
  readonly pki: TestPki;
  readonly tenants: readonly TenantEntry[];
  /** Where the tenants file (and the secrets directory, when used) live. */
  readonly dir: string;
  readonly settings?: Partial<GatewaySettings>;
}

/** The gateway on 127.0.0.1:0 with a static tenants file; closed after the test. */
export async function startGateway(t: TestContext, options: GatewayFixtureOptions): Promise<Gateway> {
  const tenantsFile = join(options.dir, 'tenants.json');
  await writeFile(tenantsFile, JSON.stringify({ tenants: options.tenants.map((tenant) => ({ limits: NO_LIMITS, ...tenant })) }));
  const gateway = await createTestGateway(options.pki, await TenantsFileDirectory.open(tenantsFile), { settings: options.settings });
  t.after(() => gateway.close());
  return gateway;
}

/**
 * The tenant directory of a fleet gateway: the control plane at `url` with its gateway token,
 * Redis as the shared cache, silent logs; ready (subscribed to invalidations). The caller closes
 * it, or the gateway it is given to does.
 */
export async function controlPlaneDirectory(url: string, token: string, redisUrl: string): Promise<ControlPlaneDirectory> {
  const tenants = new ControlPlaneDirectory({
    controlPlaneUrl: url,
    controlPlaneToken: token,
    redisUrl,
    metrics: createMetrics(),
    logger: createLogger({ level: 'silent' }),
  });
  await tenants.ready(AbortSignal.timeout(10_000));
  return tenants;
}

export interface TestGatewayOptions {
  readonly settings?: Partial<GatewaySettings> | undefined;
  /** CN of the gateway's client certificate for backends (pg_hba `cert` logs it in as that role); default `app`. */
  readonly clientName?: string;
  readonly metrics?: GatewayMetrics;
  /** Where cancel keys live; default: this process's memory. */
  readonly cancelStore?: GatewayOptions['cancelStore'];
}

/**
 * The gateway every end-to-end test runs: 127.0.0.1:0, the edge certificate for `*.db.example.test`,
 * a client certificate from the test CA for backends, silent logs. The caller closes it.
 */
export async function createTestGateway(pki: TestPki, tenants: TenantDirectory, options: TestGatewayOptions = {}): Promise<Gateway> {
  const gatewayClient = await pki.client(options.clientName ?? 'app');
  return createGateway({
    settings: {
      listen: { host: '127.0.0.1', port: 0 },
      sniSuffixes: [SUFFIX],
      allowPlaintext: false,
      handshakeTimeoutMs: 10_000,
      maxPendingConnections: 1000,
      authTimeoutMs: 10_000,
      backendConnectTimeoutMs: 10_000,
      secretsDir: undefined,
      ...options.settings,
    },
    certificates: [{ suffixes: [SUFFIX], certPem: pki.edge.chainPem, keyPem: pki.edge.keyPem }],
    backendDefaults: { caPem: pki.ca.certPem, clientCertificate: { certPem: gatewayClient.chainPem, keyPem: gatewayClient.keyPem } },
    tenants,
    // TG_TEST_LOG=info shows the gateway's lines while a test is being debugged.
    logger: createLogger({ level: (process.env.TG_TEST_LOG as 'info' | undefined) ?? 'silent' }),
    metrics: options.metrics ?? createMetrics(),
    ...(options.cancelStore === undefined ? {} : { cancelStore: options.cancelStore }),
  });
}

// ---------------------------------------------------------------------------------------------
// Real clients

export interface ClientOptions {
  readonly user?: string;
  readonly password?: string;
  readonly database?: string;
  /** SNI and the name verified; undefined: none (an IP host sends no SNI). */
  readonly servername?: string;
  /** verify-full against the test CA (default), or require (encrypted, nothing verified). */
  readonly sslmode?: 'verify-full' | 'require';
  readonly options?: string;
}

function tlsOptions(pki: TestPki, options: ClientOptions): ConnectionOptions {
  const sni = options.servername === undefined ? {} : { servername: options.servername };
  return options.sslmode === 'require' ? { ...sni, rejectUnauthorized: false } : { ...sni, ca: pki.ca.certPem };
}

/** A node-postgres client for the gateway (not connected). */
export function pgClient(gateway: Pick<Gateway, 'address'>, pki: TestPki, options: ClientOptions = {}): pg.Client {
  return new pg.Client({
    host: '127.0.0.1',
    port: gateway.address.port,
    user: options.user ?? 'app',
    password: options.password ?? PASSWORD,
    database: options.database ?? 'app',
    ssl: tlsOptions(pki, options),
    ...(options.options === undefined ? {} : { options: options.options }),
  });
}

/** A connected node-postgres client, ended after the test. */
export async function connectPg(
  t: TestContext,
  gateway: Pick<Gateway, 'address'>,
  pki: TestPki,
  options: ClientOptions = {},
): Promise<pg.Client> {
  const client = pgClient(gateway, pki, options);
  // A session the gateway ends (at teardown) must not become an unhandled 'error'.
  client.on('error', () => {});
  t.after(() => client.end().catch(() => {}));
  await client.connect();
  return client;
}

export interface ConnectFailure {
  readonly code?: string;
  readonly message: string;
  readonly detail?: string;
  readonly hint?: string;
  readonly severity?: string;
}

/** The error a node-postgres client gets connecting; fails the test if it connects. */
export async function connectError(client: pg.Client): Promise<ConnectFailure> {
  client.on('error', () => {});
  try {
    await client.connect();
  } catch (error) {
    return error as ConnectFailure;
  } finally {
    await client.end().catch(() => {});
  }
  assert.fail('the connection was expected to fail');
}

/** A postgres.js pool of one connection to the gateway, ended after the test. */
export function postgresJs(
  t: TestContext,
  gateway: Gateway,
  pki: TestPki,
  options: ClientOptions & { direct?: boolean } = {},
): postgres.Sql {
  const sql = postgres({
    host: '127.0.0.1',
    port: gateway.address.port,
    user: options.user ?? 'app',
    pass: options.password ?? PASSWORD,
    database: options.database ?? 'app',
    ssl: tlsOptions(pki, options),
    max: 1,
    onnotice: () => {},
    // PostgreSQL 17's direct TLS: a ClientHello with ALPN "postgresql" instead of an SSLRequest.
    ...(options.direct === true ? ({ sslnegotiation: 'direct' } as object) : {}),
  });
  t.after(() => sql.end({ timeout: 1 }));
  return sql;
}

/** libpq settings for the gateway: the tenant's host name for SNI, 127.0.0.1 to reach it. */
export function psqlSettings(
  gateway: Pick<Gateway, 'address'>,
  caFile: string,
  tenant: string,
  extra: Readonly<Record<string, string>> = {},
): Record<string, string> {
  return {
    host: tenantHost(tenant),
    hostaddr: '127.0.0.1',
    port: String(gateway.address.port),
    user: 'app',
    dbname: 'app',
    sslmode: 'verify-full',
    sslrootcert: caFile,
    ...extra,
  };
}

/** psql with a statement (`-c`), its stdin and stdout as streams: for COPY FROM STDIN / TO STDOUT. */
export function spawnPsql(settings: Readonly<Record<string, string>>, sql: string, home: string): ChildProcess {
  const inherited = Object.entries(process.env).filter(([name]) => !name.startsWith('PG'));
  const env = { ...Object.fromEntries(inherited), LC_ALL: 'C', PGPASSWORD: PASSWORD, HOME: home };
  return spawn(requirePsql(), ['-X', '-w', '-v', 'ON_ERROR_STOP=1', conninfo(settings), '-c', sql], {
    env,
    stdio: ['pipe', 'pipe', 'pipe'],
  });
}

/** psql's exit code and stderr, once it has exited. */
export async function psqlExit(child: ChildProcess): Promise<{ code: number | null; stderr: string }> {
  let stderr = '';
  child.stderr?.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
  const [code] = (await once(child, 'exit')) as [number | null];
  return { code, stderr };
}

// ---------------------------------------------------------------------------------------------
// Raw sockets: what a client that is not libpq (or not a Postgres client at all) sees

/** A plain TCP connection to the gateway, destroyed after the test. */
export async function rawConnect(t: TestContext, gateway: Gateway, localAddress?: string): Promise<Socket> {
  // Another loopback address as the source (127.0.0.2, ...) makes the connection another client.
  const socket = connectTcp({ port: gateway.address.port, host: '127.0.0.1', ...(localAddress === undefined ? {} : { localAddress }) });
  t.after(() => socket.destroy());
  socket.on('error', () => {});
  await once(socket, 'connect');
  return socket;
}

/** Every byte the peer sends until it closes the connection (a reset counts as a close). */
export async function readUntilClose(socket: Socket): Promise<Buffer> {
  const chunks: Buffer[] = [];
  socket.on('data', (chunk: Buffer) => chunks.push(chunk));
  if (!socket.destroyed) await once(socket, 'close');
  return Buffer.concat(chunks);
}

/** An SSLRequest on a raw connection, 'S', then TLS to the tenant's name. */
export async function upgradeToTls(
  t: TestContext,
  gateway: Gateway,
  pki: TestPki,
  servername: string,
  localAddress?: string,
): Promise<TLSSocket> {
  const raw = await rawConnect(t, gateway, localAddress);
  raw.write(serializeSSLRequest());
  const [answer] = (await once(raw, 'data')) as [Buffer];
  assert.equal(answer.toString('latin1'), 'S');
  const socket = connectTls({ socket: raw, servername, ca: pki.ca.certPem });
  t.after(() => socket.destroy());
  socket.on('error', () => {});
  await once(socket, 'secureConnect');
  return socket;
}

/**
 * TLS to the tenant's name, a StartupMessage for `user` (database `app`), and the gateway's
 * AuthenticationSASL read: the client is where SCRAM begins. The caller decides what comes next.
 */
export async function openToScram(
  t: TestContext,
  gateway: Gateway,
  pki: TestPki,
  options: { readonly tenant: string; readonly user: string; readonly localAddress?: string },
): Promise<{ socket: TLSSocket; messages: AsyncGenerator<RawMessage>; mechanisms: string[] }> {
  const socket = await upgradeToTls(t, gateway, pki, tenantHost(options.tenant), options.localAddress);
  const messages = serverMessages(socket);
  const parameters = new Map([
    ['user', options.user],
    ['database', 'app'],
  ]);
  socket.write(serializeStartupMessage({ minorVersion: 0, parameters }));
  const sasl = parsed(await nextMessage(messages));
  assert.equal(sasl.kind, 'AuthenticationSASL');
  return { socket, messages, mechanisms: sasl.kind === 'AuthenticationSASL' ? sasl.mechanisms : [] };
}

/** A cancel sent before the query runs is ignored by PostgreSQL: wait until `select pg_sleep(...)` runs. */
export async function waitForActiveSleep(backend: PostgresServer): Promise<void> {
  for (let i = 0; i < 1000; i++) {
    const rows = await backend.sql("select 1 from pg_stat_activity where state = 'active' and query like 'select pg_sleep%'");
    if (rows.length > 0) return;
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  assert.fail('the query never started');
}

/** A plaintext CancelRequest for a pg client's key on a new connection to `gateway`, as libpq sends it. */
export async function sendCancel(gateway: Gateway, processId: number, secretKey: number): Promise<void> {
  const key = Buffer.alloc(4);
  key.writeInt32BE(secretKey);
  const socket = connectTcp(gateway.address.port, '127.0.0.1');
  await once(socket, 'connect');
  socket.end(serializeCancelRequest(processId, key));
  await once(socket, 'close');
}

/** One backend message as the client sees it: its type byte and whole frame. */
export interface RawMessage {
  readonly type: string;
  readonly frame: Buffer;
}

/** The server's messages on a socket, framed; ends when the socket closes. */
export async function* serverMessages(socket: Socket): AsyncGenerator<RawMessage> {
  const decoder = new FrameDecoder({ phase: FramePhase.Normal });
  for await (const chunk of socket) {
    decoder.push(chunk as Buffer);
    for (let frame = decoder.next(); frame !== null; frame = decoder.next()) {
      yield { type: String.fromCharCode(frame[0] ?? 0), frame: Buffer.from(frame) };
    }
  }
}

/** The next message, or undefined if the connection closed first. */
export async function nextMessage(messages: AsyncGenerator<RawMessage>): Promise<RawMessage | undefined> {
  const { value, done } = await messages.next();
  return done === true ? undefined : value;
}

/** A startup-phase message parsed (Authentication*, ErrorResponse, ParameterStatus, ...). */
export function parsed(message: RawMessage | undefined): BackendMessage {
  assert.ok(message, 'expected a message before the connection closed');
  return parseBackendMessage(message.frame);
}

/** The fields of an ErrorResponse, failing the test on anything else. */
export function errorFields(bytes: Buffer | RawMessage | undefined): NoticeFields {
  const frame = Buffer.isBuffer(bytes) ? bytes : bytes?.frame;
  assert.ok(frame !== undefined && frame.length > 0, 'expected an ErrorResponse, got nothing');
  assert.equal(
    String.fromCharCode(frame[0] ?? 0),
    'E',
    `expected an ErrorResponse, got ${JSON.stringify(frame.subarray(0, 16).toString('latin1'))}`,
  );
  const message = parseBackendMessage(frame);
  assert.equal(message.kind, 'ErrorResponse');
  return message.fields;
}

/** What a client saw logging in: the kinds of messages after SASLFinal, the key it was given, or the error. */
export interface LoginOutcome {
  readonly kinds: string[];
  readonly key: { readonly processId: number; readonly secretKey: Buffer } | undefined;
  readonly error: NoticeFields | undefined;
}

/** `startup`, then SCRAM-SHA-256-PLUS with the libs/wire client, up to ReadyForQuery or an error. */
export async function scramLogin(socket: TLSSocket, messages: AsyncGenerator<RawMessage>, startup: Buffer): Promise<LoginOutcome> {
  socket.write(startup);
  const sasl = parsed(await nextMessage(messages));
  assert.equal(sasl.kind, 'AuthenticationSASL');
  const scram = new ScramClientExchange({
    password: PASSWORD,
    peerCertificate: socket.getPeerX509Certificate(),
    channelBinding: 'require',
  });
  const first = scram.start(sasl.kind === 'AuthenticationSASL' ? sasl.mechanisms : []);
  assert.equal(first.mechanism, 'SCRAM-SHA-256-PLUS');
  socket.write(serializeSASLInitialResponse(first.mechanism, Buffer.from(first.message)));
  const challenge = parsed(await nextMessage(messages));
  assert.equal(challenge.kind, 'AuthenticationSASLContinue');
  const final = await scram.handleServerFirst(challenge.kind === 'AuthenticationSASLContinue' ? challenge.data : '');
  socket.write(serializeSASLResponse(Buffer.from(final)));
  const outcome = parsed(await nextMessage(messages));
  assert.equal(outcome.kind, 'AuthenticationSASLFinal');
  scram.handleServerFinal(outcome.kind === 'AuthenticationSASLFinal' ? outcome.data : '');
  const kinds: string[] = [];
  let key: LoginOutcome['key'];
  for (let message = await nextMessage(messages); message?.type !== 'Z'; message = await nextMessage(messages)) {
    assert.ok(message, 'the connection closed before ReadyForQuery');
    if (message.type === 'E') return { kinds, key, error: errorFields(message) };
    const decoded = parsed(message);
    if (decoded.kind === 'BackendKeyData') key = decoded;
    kinds.push(decoded.kind);
  }
  return { kinds, key, error: undefined };
}

/** A simple Query message ('Q'). */
export function queryMessage(sql: string): Buffer {
  const text = Buffer.from(`${sql}\0`);
  const frame = Buffer.alloc(5 + text.length);
  frame.write('Q', 0, 'latin1');
  frame.writeInt32BE(4 + text.length, 1);
  text.copy(frame, 5);
  return frame;
}

/** The text columns of a DataRow ('D'); null for SQL NULL. */
export function dataRowValues(frame: Buffer): (string | null)[] {
  const count = frame.readInt16BE(5);
  const values: (string | null)[] = [];
  let offset = 7;
  for (let i = 0; i < count; i++) {
    const length = frame.readInt32BE(offset);
    offset += 4;
    if (length < 0) {
      values.push(null);
      continue;
    }
    values.push(frame.toString('utf8', offset, offset + length));
    offset += length;
  }
  return values;
}

/** Asserts that a text a client was shown names no internal address or port of the backend. */
export function assertNoInternalAddress(fields: ConnectFailure, backendPort: number): void {
  for (const text of [fields.message, fields.detail, fields.hint]) {
    if (text === undefined) continue;
    assert.doesNotMatch(text, /127\.0\.0\.1|localhost|::1/, `"${text}" names an internal address`);
    assert.ok(!text.includes(String(backendPort)), `"${text}" names the backend's port ${backendPort}`);
  }
}
