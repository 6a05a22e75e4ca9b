// Test harness for edge authentication: the real listener (startListener, through the front door
// of front-door.ts) whose next phase runs authenticateClient against in-memory tenants, then plays
// a tiny backend itself: AuthenticationOk, ParameterStatus, BackendKeyData, ReadyForQuery, and one
// row with the authenticated role for every simple Query. Real clients (psql, pg, postgres) log
// into it; raw TLS clients drive the SASL exchange message by message. Imported by tests only.
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { connect as connectTcp, createServer, type AddressInfo, type Socket } from 'node:net';
import type { TestContext } from 'node:test';
import type { TLSSocket } from 'node:tls';
import {
  BackendMessageType,
  FrameDecoder,
  FrameWriter,
  FrontendMessageType,
  ScramClientExchange,
  buildErrorResponse,
  createScramSecret,
  cstringLength,
  parseBackendMessage,
  readFrame,
  serializeAuthenticationOk,
  serializeBackendKeyData,
  serializeParameterStatus,
  serializeReadyForQuery,
  serializeSASLInitialResponse,
  serializeSASLResponse,
  type BackendMessage,
  type ScramChannelBinding,
} from '@tenantgate/wire';
import type { Tenant, TenantRole } from '@tenantgate/tenancy';
import type { TestPki } from '@tenantgate/testing';
import type { ClientStartup } from '../edge/index.ts';
import { authenticateClient, type EdgeAuthResult } from '../session/index.ts';
import { closeGracefully } from '../refusal.ts';
import { connectRaw, startTestFront, startupMessage, upgradeToTls, type TestFront } from './front-door.ts';
import { EdgeAuthError } from '../errors.ts';

export const EDGE_PASSWORD = 'secret-pw';
export const EDGE_ROLE = 'app';
/** Has the role `app`. */
export const ACME_HOST = 'acme.db.example.test';
/** Has no role `app`: the same user name as acme's, unknown here. */
export const GLOBEX_HOST = 'globex.db.example.test';
/** A fixed fleet-wide key, as the gateway would derive it. */
export const EDGE_MOCK_KEY = Buffer.alloc(32, 0x6d);

export const EDGE_PARAMETER_STATUS: ReadonlyMap<string, string> = new Map([
  ['server_version', '15.0'],
  ['server_encoding', 'UTF8'],
  ['client_encoding', 'UTF8'],
  ['DateStyle', 'ISO, MDY'],
  ['integer_datetimes', 'on'],
  ['standard_conforming_strings', 'on'],
]);

/** How one authentication ended, as the harness saw it. */
export type EdgeAuthRecord =
  | {
      readonly tenantId: string;
      readonly user: string;
      readonly outcome: 'ok';
      readonly mechanism: string;
      readonly channelBound: boolean;
      readonly leftover: Buffer;
      /** The socket as authenticateClient left it. */
      readonly paused: boolean;
      readonly dataListeners: number;
      readonly serverKeyLength: number;
    }
  | {
      readonly tenantId: string;
      readonly user: string;
      readonly outcome: 'failed';
      readonly error: EdgeAuthError;
    };

export interface EdgeHarnessOptions {
  readonly timeoutMs?: number;
  /** Aborts every exchange with this reason after `abortAfterMs`. */
  readonly abort?: { readonly afterMs: number; readonly reason: unknown };
}

export interface EdgeHarness {
  readonly port: number;
  readonly front: TestFront;
  readonly tenants: ReadonlyMap<string, Tenant>;
  /** Every authentication so far, in the order they ended. */
  readonly records: EdgeAuthRecord[];
  /** The next authentication to end (or the oldest one not yet taken). */
  nextRecord(): Promise<EdgeAuthRecord>;
}

export async function startEdgeHarness(t: TestContext, pki: TestPki, options: EdgeHarnessOptions = {}): Promise<EdgeHarness> {
  const tenants = new Map([
    ['acme', edgeTenant('acme', [{ name: EDGE_ROLE, scramSecret: await secretOf(EDGE_PASSWORD) }])],
    ['globex', edgeTenant('globex', [{ name: 'other', scramSecret: await secretOf('other-pw') }])],
  ]);
  const records: EdgeAuthRecord[] = [];
  const untaken: EdgeAuthRecord[] = [];
  const waiters: ((record: EdgeAuthRecord) => void)[] = [];
  const record = (entry: EdgeAuthRecord): void => {
    records.push(entry);
    const waiter = waiters.shift();
    if (waiter === undefined) untaken.push(entry);
    else waiter(entry);
  };
  const front = await startTestFront(t, pki, {
    onClient: (client) => authenticate(client, tenants, options, record),
  });
  return {
    port: front.port,
    front,
    tenants,
    records,
    nextRecord: () => {
      const ready = untaken.shift();
      return ready === undefined ? new Promise((resolve) => waiters.push(resolve)) : Promise.resolve(ready);
    },
  };
}

function edgeTenant(id: string, roles: TenantRole[]): Tenant {
  return {
    id,
    status: 'active',
    backend: { host: '10.0.3.17', port: 5432 },
    authMode: 'gateway',
    userRewrite: {},
    roles,
    allowedCidrs: ['0.0.0.0/0'],
    limits: { maxConnections: 100, connectsPerSecond: 50 },
    replication: 'none',
  };
}

const secrets = new Map<string, Promise<string>>();

/** One secret per password for the whole run: each costs a PBKDF2 of 4096 iterations. */
function secretOf(password: string): Promise<string> {
  let secret = secrets.get(password);
  if (secret === undefined) secrets.set(password, (secret = createScramSecret(password)));
  return secret;
}

function authenticate(
  client: ClientStartup,
  tenants: ReadonlyMap<string, Tenant>,
  options: EdgeHarnessOptions,
  record: (r: EdgeAuthRecord) => void,
): void {
  const tenant = tenants.get(client.tenantId);
  if (tenant === undefined) {
    closeGracefully(
      client.socket,
      buildErrorResponse({ severity: 'FATAL', code: '08004', message: `unknown tenant "${client.tenantId}"` }),
      200,
    );
    return;
  }
  const user = client.startup.parameters.get('user') ?? '';
  const abort = options.abort === undefined ? undefined : abortAfter(options.abort.afterMs, options.abort.reason);
  const auth = authenticateClient(client, {
    role: tenant.roles.find((role) => role.name === user),
    roleName: user,
    tenantId: tenant.id,
    mockKey: EDGE_MOCK_KEY,
    timeoutMs: options.timeoutMs ?? 5000,
    refusalGraceMs: 200,
    ...(abort === undefined ? {} : { signal: abort }),
  });
  auth.then(
    (result) => {
      record(succeeded(client, tenant.id, user, result));
      result.clientKey.fill(0);
      new EdgeTestSession(client.socket, user, result.leftover);
    },
    (error: unknown) => {
      if (!(error instanceof EdgeAuthError)) throw error;
      record({ tenantId: tenant.id, user, outcome: 'failed', error });
    },
  );
}

function abortAfter(ms: number, reason: unknown): AbortSignal {
  const controller = new AbortController();
  setTimeout(() => controller.abort(reason), ms).unref();
  return controller.signal;
}

function succeeded(client: ClientStartup, tenantId: string, user: string, result: EdgeAuthResult): EdgeAuthRecord {
  return {
    tenantId,
    user,
    outcome: 'ok',
    mechanism: result.mechanism,
    channelBound: result.channelBound,
    leftover: Buffer.from(result.leftover),
    paused: client.socket.isPaused(),
    dataListeners: client.socket.listenerCount('data'),
    serverKeyLength: result.serverKey.length,
  };
}

// ---------------------------------------------------------------------------------------------
// The backend the harness plays after a successful authentication

let nextProcessId = 4000;

/** After SASLFinal: the rest of a PostgreSQL login, then simple queries answered with the role. */
class EdgeTestSession {
  readonly #socket: ClientStartup['socket'];
  readonly #user: string;
  readonly #decoder = new FrameDecoder();
  #skippingToSync = false;

  constructor(socket: ClientStartup['socket'], user: string, leftover: Buffer) {
    this.#socket = socket;
    this.#user = user;
    socket.write(
      Buffer.concat([
        serializeAuthenticationOk(),
        ...[...EDGE_PARAMETER_STATUS].map(([name, value]) => serializeParameterStatus(name, value)),
        serializeBackendKeyData(nextProcessId++, randomBytes(4)),
        serializeReadyForQuery('I'),
      ]),
    );
    socket.on('data', (chunk: Buffer) => this.#receive(chunk));
    this.#receive(leftover);
    socket.resume();
  }

  #receive(chunk: Buffer): void {
    this.#decoder.push(chunk);
    for (let frame = this.#decoder.next(); frame !== null; frame = this.#decoder.next()) this.#handle(frame);
  }

  #handle(frame: Buffer): void {
    const type = frame[0];
    if (type === FrontendMessageType.Terminate) {
      closeGracefully(this.#socket, undefined, 200);
      return;
    }
    if (type === FrontendMessageType.Sync) {
      this.#skippingToSync = false;
      this.#socket.write(serializeReadyForQuery('I'));
      return;
    }
    if (this.#skippingToSync) return;
    if (type === FrontendMessageType.Query) {
      this.#socket.write(
        Buffer.concat([rowDescription(['user']), dataRow([this.#user]), commandComplete('SELECT 1'), serializeReadyForQuery('I')]),
      );
      return;
    }
    // The extended protocol: refused batch by batch, as the wire tests' server does.
    this.#skippingToSync = true;
    this.#socket.write(
      buildErrorResponse({ severity: 'ERROR', code: '0A000', message: 'the edge harness only speaks the simple query protocol' }),
    );
  }
}

const TEXT_OID = 25;

function rowDescription(names: readonly string[]): Buffer {
  let length = 2;
  for (const name of names) length += cstringLength(name) + 18;
  const writer = FrameWriter.message(BackendMessageType.RowDescription, length).int16(names.length);
  for (const name of names) writer.cstring(name).int32(0).int16(0).int32(TEXT_OID).int16(-1).int32(-1).int16(0);
  return writer.finish();
}

function dataRow(values: readonly string[]): Buffer {
  const encoded = values.map((value) => Buffer.from(value, 'utf8'));
  const length = encoded.reduce((sum, value) => sum + 4 + value.length, 2);
  const writer = FrameWriter.message(BackendMessageType.DataRow, length).int16(values.length);
  for (const value of encoded) writer.int32(value.length).bytes(value);
  return writer.finish();
}

function commandComplete(tag: string): Buffer {
  return FrameWriter.message(BackendMessageType.CommandComplete, cstringLength(tag)).cstring(tag).finish();
}

export function serializeQuery(sql: string): Buffer {
  return FrameWriter.message(FrontendMessageType.Query, cstringLength(sql)).cstring(sql).finish();
}

/** The values of a DataRow in text format. */
export function parseDataRow(frame: Buffer): string[] {
  const reader = readFrame(frame, BackendMessageType.DataRow, 'DataRow');
  const values: string[] = [];
  for (let count = reader.bytes(2).readInt16BE(0); count > 0; count--) values.push(reader.bytes(reader.int32()).toString('utf8'));
  reader.end();
  return values;
}

// ---------------------------------------------------------------------------------------------
// Raw TLS clients

/** A server that stops answering fails the test in seconds, not at the runner's timeout. */
const FRAME_TIMEOUT_MS = 5_000;

/** Whole frames from a socket, one `await` at a time, and the moment it closes. */
export class EdgeFrames {
  readonly #decoder = new FrameDecoder();
  readonly #frames: Buffer[] = [];
  readonly #waiters: ((frame: Buffer | undefined) => void)[] = [];
  #closed = false;
  /** Resolves when the server has closed the connection (or it failed). */
  readonly closed: Promise<void>;

  constructor(socket: Socket) {
    socket.on('data', (chunk: Buffer) => {
      this.#decoder.push(chunk);
      for (let frame = this.#decoder.next(); frame !== null; frame = this.#decoder.next()) this.#deliver(frame);
    });
    socket.on('error', () => socket.destroy());
    this.closed = once(socket, 'close').then(() => {
      this.#closed = true;
      for (const waiter of this.#waiters.splice(0)) waiter(undefined);
    });
  }

  /** The next frame, or undefined once the server closed with nothing left. */
  next(): Promise<Buffer | undefined> {
    const frame = this.#frames.shift();
    if (frame !== undefined || this.#closed) return Promise.resolve(frame);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no message from the gateway in ${FRAME_TIMEOUT_MS} ms`)), FRAME_TIMEOUT_MS);
      this.#waiters.push((next) => {
        clearTimeout(timer);
        resolve(next);
      });
    });
  }

  /** The next frame parsed; fails when the server closed instead. */
  async message(): Promise<BackendMessage> {
    const frame = await this.next();
    if (frame === undefined) throw new Error('the gateway closed the connection');
    return parseBackendMessage(frame);
  }

  /** Every frame until the server closes. */
  async rest(): Promise<Buffer[]> {
    const frames: Buffer[] = [];
    for (let frame = await this.next(); frame !== undefined; frame = await this.next()) frames.push(frame);
    return frames;
  }

  #deliver(frame: Buffer): void {
    const waiter = this.#waiters.shift();
    if (waiter === undefined) this.#frames.push(frame);
    else waiter(frame);
  }
}

export interface RawClient {
  readonly socket: TLSSocket;
  readonly frames: EdgeFrames;
  /** The mechanisms of the gateway's AuthenticationSASL. */
  readonly mechanisms: string[];
}

export interface RawClientOptions {
  readonly servername?: string;
  readonly user?: string;
}

/** TLS to the harness, a StartupMessage, and the AuthenticationSASL it answers with. */
export async function startRawClient(t: TestContext, harness: EdgeHarness, ca: string, options: RawClientOptions = {}): Promise<RawClient> {
  const raw = await connectRaw(harness.port);
  t.after(() => raw.destroy());
  const socket = await upgradeToTls(raw, { servername: options.servername ?? ACME_HOST, ca });
  t.after(() => socket.destroy());
  const frames = new EdgeFrames(socket);
  socket.write(startupMessage({ user: options.user ?? EDGE_ROLE, database: 'app' }));
  const request = await frames.message();
  if (request.kind !== 'AuthenticationSASL') throw new Error(`expected AuthenticationSASL, got ${request.kind}`);
  return { socket, frames, mechanisms: request.mechanisms };
}

export interface ScramAttempt {
  readonly client: RawClient;
  readonly mechanism: string;
  /** The raw frame that answered the client-final-message: SASLFinal, or the ErrorResponse. */
  readonly reply: Buffer;
}

/** A whole SCRAM exchange by libs/wire's client, up to the gateway's answer to the proof. */
export async function scramAttempt(
  t: TestContext,
  harness: EdgeHarness,
  ca: string,
  options: RawClientOptions & { readonly password: string; readonly channelBinding?: ScramChannelBinding },
): Promise<ScramAttempt> {
  const client = await startRawClient(t, harness, ca, options);
  const peerCertificate = client.socket.getPeerX509Certificate();
  const scram = new ScramClientExchange({
    password: options.password,
    channelBinding: options.channelBinding ?? 'prefer',
    ...(peerCertificate ? { peerCertificate } : {}),
  });
  const { mechanism, message } = scram.start(client.mechanisms);
  client.socket.write(serializeSASLInitialResponse(mechanism, Buffer.from(message, 'latin1')));
  const serverFirst = await client.frames.message();
  if (serverFirst.kind !== 'AuthenticationSASLContinue') throw new Error(`expected SASLContinue, got ${serverFirst.kind}`);
  const clientFinal = await scram.handleServerFirst(serverFirst.data);
  client.socket.write(serializeSASLResponse(Buffer.from(clientFinal, 'latin1')));
  const reply = await client.frames.next();
  if (reply === undefined) throw new Error('the gateway closed without answering the proof');
  return { client, mechanism, reply };
}

/** Two ends of a loopback TCP connection: `server` paused, as the handshake hands a socket over. */
export async function edgeSocketPair(t: TestContext): Promise<{ server: Socket; client: Socket }> {
  const listener = createServer();
  listener.listen(0, '127.0.0.1');
  await once(listener, 'listening');
  t.after(() => listener.close());
  const accepted = once(listener, 'connection') as Promise<[Socket]>;
  const client = connectTcp({ host: '127.0.0.1', port: (listener.address() as AddressInfo).port });
  t.after(() => client.destroy());
  const [server] = await accepted;
  t.after(() => server.destroy());
  server.pause();
  await once(client, 'connect');
  return { server, client };
}
