// Test helpers for the backend leg: stand-in servers for what a real PostgreSQL cannot be made to
// do (answer 'N', say nothing, hand out TLS session tickets, send odd messages), connection
// counting so tests can assert that nothing lingers, and a simple-query client for the socket a
// backend session hands over. Imported by tests only.
import { once } from 'node:events';
import { createServer, type Server, type Socket } from 'node:net';
import type { TestContext } from 'node:test';
import { createServer as createTlsServer, type TLSSocket, type TlsOptions } from 'node:tls';
import {
  FrameDecoder,
  FramePhase,
  FrameWriter,
  FrontendMessageType,
  parseStartupPacket,
  serializeAuthenticationOk,
  serializeBackendKeyData,
  serializeParameterStatus,
  serializeReadyForQuery,
  serializeTerminate,
  type StartupMessage,
} from '@tenantgate/wire';
import type { PostgresServer } from '@tenantgate/testing';

export interface FakeBackend {
  readonly port: number;
  /** Connections accepted so far. */
  readonly accepted: () => number;
  /** Connections still open on the server side. */
  readonly open: () => number;
  /** Resolves once no connection is open (rejects after `timeoutMs`). */
  waitForNoConnections(timeoutMs?: number): Promise<void>;
}

/** A TCP server on 127.0.0.1:0 that hands each connection to `onConnection`; closed after the test. */
export async function startFakeBackend(t: TestContext, onConnection: (socket: Socket) => void): Promise<FakeBackend> {
  const sockets = new Set<Socket>();
  let accepted = 0;
  const server: Server = createServer((socket) => {
    accepted++;
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => socket.destroy());
    onConnection(socket);
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  t.after(async () => {
    for (const socket of sockets) socket.destroy();
    server.close();
    await once(server, 'close');
  });
  const port = (server.address() as { port: number }).port;
  return {
    port,
    accepted: () => accepted,
    open: () => sockets.size,
    waitForNoConnections: (timeoutMs = 5000) =>
      waitFor(
        () => sockets.size === 0,
        timeoutMs,
        () => `${sockets.size} connection(s) still open`,
      ),
  };
}

/** What a fake TLS backend does once the client's StartupMessage has arrived. */
export type OnStartup = (socket: TLSSocket, startup: StartupMessage) => void;

export interface FakeTlsBackend extends FakeBackend {
  /** `isSessionReused()` of each TLS connection, in order. */
  readonly resumed: boolean[];
  /** StartupMessages received, in order. */
  readonly startups: StartupMessage[];
}

/**
 * A server that speaks the start of the protocol like PostgreSQL: 'S' to an SSLRequest, TLS
 * (a Node TLS server, which issues session tickets, unlike PostgreSQL 15), then `onStartup` with
 * the parsed StartupMessage.
 */
export async function startFakeTlsBackend(t: TestContext, tls: TlsOptions, onStartup: OnStartup = answerReady()): Promise<FakeTlsBackend> {
  const resumed: boolean[] = [];
  const startups: StartupMessage[] = [];
  const tlsServer = createTlsServer({ ...tls, ALPNProtocols: ['postgresql'] }, (socket) => {
    resumed.push(socket.isSessionReused());
    socket.on('error', () => socket.destroy());
    void readStartup(socket).then((startup) => {
      if (startup === undefined) return;
      startups.push(startup);
      onStartup(socket, startup);
    });
  });
  tlsServer.on('tlsClientError', () => {
    // The client gave up on the handshake; the test asserts on the client's side.
  });
  const backend = await startFakeBackend(t, (socket) => {
    socket.once('data', (chunk: Buffer) => {
      socket.pause();
      socket.write('S');
      if (chunk.length > 8) socket.unshift(chunk.subarray(8));
      tlsServer.emit('connection', socket);
    });
  });
  return { ...backend, resumed, startups };
}

/** The client's first packet after TLS, parsed; undefined if the connection ends first. */
function readStartup(socket: TLSSocket): Promise<StartupMessage | undefined> {
  const decoder = new FrameDecoder({ phase: FramePhase.Startup });
  return new Promise((resolve) => {
    const onData = (chunk: Buffer): void => {
      decoder.push(chunk);
      const frame = decoder.next();
      if (frame === null) return;
      socket.off('data', onData);
      socket.off('close', onClose);
      socket.pause();
      const packet = parseStartupPacket(frame);
      resolve(packet.kind === 'StartupMessage' ? packet : undefined);
    };
    const onClose = (): void => resolve(undefined);
    socket.on('data', onData);
    socket.once('close', onClose);
  });
}

/** AuthenticationOk, ParameterStatus, BackendKeyData, ReadyForQuery, then `after` in the same write. */
export function answerReady(after: Buffer = Buffer.alloc(0)): OnStartup {
  return (socket) => {
    socket.write(Buffer.concat([readyMessages(), after]));
    socket.resume();
  };
}

export function readyMessages(): Buffer {
  return Buffer.concat([
    serializeAuthenticationOk(),
    serializeParameterStatus('server_version', '15.0 (fake)'),
    serializeParameterStatus('client_encoding', 'UTF8'),
    serializeBackendKeyData(4242, Buffer.from([1, 2, 3, 4])),
    serializeReadyForQuery('I'),
  ]);
}

/** The client's messages after the StartupMessage, one at a time, as a fake backend reads them. */
export class ClientMessages {
  readonly #decoder = new FrameDecoder();
  readonly #waiters: ((frame: Buffer | undefined) => void)[] = [];
  #closed = false;

  constructor(socket: TLSSocket) {
    socket.on('data', (chunk: Buffer) => {
      this.#decoder.push(chunk);
      this.#wake();
    });
    socket.once('close', () => {
      this.#closed = true;
      this.#wake();
    });
    socket.resume();
  }

  /** The next whole message (type byte first), or undefined once the client has gone. */
  next(): Promise<Buffer | undefined> {
    return new Promise((resolve) => {
      this.#waiters.push(resolve);
      this.#wake();
    });
  }

  #wake(): void {
    while (this.#waiters.length > 0) {
      const frame = this.#decoder.next();
      if (frame === null && !this.#closed) return;
      this.#waiters.shift()?.(frame ?? undefined);
    }
  }
}

// ---------------------------------------------------------------------------------------------
// A real PostgreSQL: counting the gateway's sessions

/** Client backends other than the one asking (the fixture's own `sql()` connection). */
export async function sessionCount(db: PostgresServer): Promise<number> {
  const rows = await db.sql<{ n: number }>(
    "SELECT count(*)::int AS n FROM pg_stat_activity WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()",
  );
  return rows[0].n;
}

/** Resolves once PostgreSQL has no client session left but the asker's (backends exit asynchronously). */
export async function waitForNoSessions(db: PostgresServer, timeoutMs = 5000): Promise<void> {
  let last = -1;
  await waitFor(
    async () => (last = await sessionCount(db)) === 0,
    timeoutMs,
    () => `${last} session(s) still open`,
  );
}

async function waitFor(check: () => boolean | Promise<boolean>, timeoutMs: number, describe: () => string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out: ${describe()}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

// ---------------------------------------------------------------------------------------------
// A simple-query client for a spliced socket

export interface QueryResult {
  readonly rows: (string | null)[][];
  readonly commandTag: string;
  readonly transactionStatus: string;
}

/**
 * Sends a Query and reads to ReadyForQuery. `leftover` (from the session) is read first. The
 * socket is paused again afterwards.
 */
export function simpleQuery(socket: TLSSocket, sql: string, leftover: Buffer = Buffer.alloc(0)): Promise<QueryResult> {
  const decoder = new FrameDecoder();
  const result = { rows: [] as (string | null)[][], commandTag: '', transactionStatus: '' };
  return new Promise<QueryResult>((resolve, reject) => {
    const finish = (error?: Error): void => {
      socket.off('data', onData);
      socket.off('close', onClose);
      socket.pause();
      if (error === undefined) resolve(result);
      else reject(error);
    };
    const onData = (chunk: Buffer): void => {
      decoder.push(chunk);
      try {
        for (let frame = decoder.next(); frame !== null; frame = decoder.next()) if (readFrame(frame, result)) return finish();
      } catch (error) {
        finish(error as Error);
      }
    };
    const onClose = (): void => finish(new Error('the backend closed the connection during the query'));
    socket.on('data', onData);
    socket.once('close', onClose);
    socket.write(
      FrameWriter.message(FrontendMessageType.Query, Buffer.byteLength(sql) + 1)
        .cstring(sql)
        .finish(),
    );
    if (leftover.length > 0) onData(leftover);
    socket.resume();
  });
}

/** Collects rows and the tag; true at ReadyForQuery. */
function readFrame(frame: Buffer, result: { rows: (string | null)[][]; commandTag: string; transactionStatus: string }): boolean {
  switch (String.fromCharCode(frame[0])) {
    case 'D':
      result.rows.push(dataRowValues(frame));
      return false;
    case 'C':
      result.commandTag = frame.toString('utf8', 5, frame.length - 1);
      return false;
    case 'E':
      throw new Error(`query failed: ${frame.toString('latin1', 5).replaceAll('\0', ' ')}`);
    case 'Z':
      result.transactionStatus = String.fromCharCode(frame[5]);
      return true;
    default:
      return false;
  }
}

function dataRowValues(frame: Buffer): (string | null)[] {
  const values: (string | null)[] = [];
  let offset = 7;
  for (let i = 0; i < frame.readInt16BE(5); i++) {
    const length = frame.readInt32BE(offset);
    offset += 4;
    values.push(length === -1 ? null : frame.toString('utf8', offset, offset + length));
    offset += Math.max(length, 0);
  }
  return values;
}

/** Terminate, then wait for the backend to close its side. */
export async function terminate(socket: TLSSocket): Promise<void> {
  socket.on('error', () => socket.destroy());
  socket.resume();
  const closed = once(socket, 'close');
  socket.end(serializeTerminate());
  await closed;
}
