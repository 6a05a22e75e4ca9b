// Test helpers for the splice: real TLS connections on loopback (node:tls servers on port 0 with
// the run's certificates), readers that hash what they receive and can be held paused, writers
// that respect backpressure, and valid backend byte streams. Imported by tests only.
import { createHash, type Hash } from 'node:crypto';
import { once } from 'node:events';
import type { Socket } from 'node:net';
import { TLSSocket, connect as connectTls, createServer as createTlsServer } from 'node:tls';
import type { TestContext } from 'node:test';
import type { TestPki } from '@tenantgate/testing';
import { BackendMessageType } from '@tenantgate/wire';

/** Both ends of one TLS connection: `server` accepted it, `client` opened it. */
export interface TlsPair {
  readonly server: TLSSocket;
  readonly client: TLSSocket;
  /** The TCP connection under `server`: resetAndDestroy() it to send a reset. */
  readonly serverTcp: Socket;
}

/** A TLS connection over loopback; both ends are destroyed and the server closed after the test. */
export async function tlsPair(t: TestContext, pki: TestPki): Promise<TlsPair> {
  const server = createTlsServer({ cert: pki.backend.chainPem, key: pki.backend.keyPem });
  const sockets = new Set<Socket>();
  server.on('connection', (socket: Socket) => sockets.add(socket));
  server.on('secureConnection', (socket: TLSSocket) => sockets.add(socket));
  t.after(async () => {
    for (const socket of sockets) socket.destroy();
    server.close();
    await once(server, 'close');
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as { port: number };
  const accepted = once(server, 'secureConnection') as Promise<[TLSSocket]>;
  const client = connectTls({ host: '127.0.0.1', port, ca: pki.ca.certPem, servername: 'localhost' });
  sockets.add(client);
  const [[serverSocket]] = await Promise.all([accepted, once(client, 'secureConnect')]);
  // Readers decide when to flow; nothing is read before a test attaches to a socket.
  serverSocket.pause();
  client.pause();
  const serverTcp = [...sockets].find((socket) => !(socket instanceof TLSSocket)) as Socket;
  return { server: serverSocket, client, serverTcp };
}

/**
 * The four sockets around a splice: `app` (the client program) ↔ `gatewayClient` | splice |
 * `gatewayBackend` ↔ `db` (the backend server's end).
 */
export interface SpliceSockets {
  readonly app: TLSSocket;
  /** The TCP connection under `db`. */
  readonly dbTcp: Socket;
  readonly gatewayClient: TLSSocket;
  readonly gatewayBackend: TLSSocket;
  readonly db: TLSSocket;
}

export async function spliceSockets(t: TestContext, pki: TestPki): Promise<SpliceSockets> {
  const [front, back] = await Promise.all([tlsPair(t, pki), tlsPair(t, pki)]);
  return { app: front.client, gatewayClient: front.server, gatewayBackend: back.client, db: back.server, dbTcp: back.serverTcp };
}

/** Collects what a socket receives: every byte (or only a hash and a count), and its end. */
export class SpliceReader {
  readonly #socket: TLSSocket;
  readonly #hash: Hash | undefined;
  readonly #chunks: Buffer[] | undefined;
  readonly #waiters: { bytes: number; resolve: () => void }[] = [];
  #received = 0;
  #ended = false;
  /** Resolves when the socket has closed. */
  readonly closed: Promise<void>;

  /** `keep`: keep every byte (small streams); otherwise only a SHA-256 and a count. */
  constructor(socket: TLSSocket, options: { keep?: boolean; paused?: boolean } = {}) {
    this.#socket = socket;
    this.#chunks = options.keep === false ? undefined : [];
    this.#hash = options.keep === false ? createHash('sha256') : undefined;
    this.closed = new Promise((resolve) => socket.once('close', () => resolve()));
    socket.on('error', () => {
      // The test looks at what arrived and at the close.
    });
    socket.on('data', (chunk: Buffer) => this.#take(chunk));
    socket.on('end', () => {
      this.#ended = true;
      this.#wake();
    });
    if (options.paused) socket.pause();
    else socket.resume();
  }

  get received(): number {
    return this.#received;
  }

  /** True once the peer's FIN arrived (a reset or destroy without FIN leaves it false). */
  get ended(): boolean {
    return this.#ended;
  }

  get bytes(): Buffer {
    return Buffer.concat(this.#chunks ?? []);
  }

  digest(): string {
    return (this.#hash as Hash).copy().digest('hex');
  }

  pause(): void {
    this.#socket.pause();
  }

  resume(): void {
    this.#socket.resume();
  }

  /** Resolves once `bytes` bytes have arrived; rejects if the stream ends first. */
  waitFor(bytes: number): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      this.#waiters.push({
        bytes,
        resolve: () => (this.#received >= bytes ? resolve() : reject(new Error(`ended after ${this.#received} of ${bytes} bytes`))),
      });
      this.#wake();
    });
  }

  #take(chunk: Buffer): void {
    this.#received += chunk.length;
    this.#chunks?.push(chunk);
    this.#hash?.update(chunk);
    this.#wake();
  }

  #wake(): void {
    for (let i = this.#waiters.length - 1; i >= 0; i--) {
      const waiter = this.#waiters[i];
      if (this.#received >= waiter.bytes || this.#ended) {
        this.#waiters.splice(i, 1);
        waiter.resolve();
      }
    }
  }
}

/** Writes `block` `times` times, waiting for 'drain' whenever write() says so. */
export class SpliceWriter {
  written = 0;
  /** True while waiting for 'drain'. */
  blocked = false;
  readonly done: Promise<void>;

  constructor(socket: TLSSocket, block: Buffer, times: number) {
    this.done = this.#run(socket, block, times);
  }

  async #run(socket: TLSSocket, block: Buffer, times: number): Promise<void> {
    for (let i = 0; i < times; i++) {
      this.written += block.length;
      if (!socket.write(block)) {
        this.blocked = true;
        await once(socket, 'drain');
        this.blocked = false;
      }
    }
  }
}

/** Resolves once `writer` has been blocked, with nothing more written, for `quietPolls` polls in a row. */
export async function waitUntilStalled(writer: SpliceWriter, quietPolls = 5, pollMs = 40): Promise<void> {
  let last = -1;
  let quiet = 0;
  while (quiet < quietPolls) {
    await new Promise((resolve) => setTimeout(resolve, pollMs));
    quiet = writer.blocked && writer.written === last ? quiet + 1 : 0;
    last = writer.written;
  }
}

/** The largest value each probe returned, sampled every `everyMs` until stop(). */
export function sampleMax(probes: Record<string, () => number>, everyMs = 2): { max: Record<string, number>; stop(): void } {
  const max: Record<string, number> = Object.fromEntries(Object.keys(probes).map((name) => [name, 0]));
  const sample = (): void => {
    for (const [name, probe] of Object.entries(probes)) max[name] = Math.max(max[name], probe());
  };
  const timer = setInterval(sample, everyMs);
  return {
    max,
    stop() {
      sample();
      clearInterval(timer);
    },
  };
}

/**
 * `size` bytes of CopyData messages (a valid server stream) with bodies of `bodyLength` bytes
 * (odd, so messages cross TLS record and read boundaries), the last one shorter to fit.
 */
export function copyDataBlock(size: number, bodyLength = 9_997, seed = 1): Buffer {
  const block = Buffer.alloc(size);
  let pos = 0;
  let value = seed;
  while (pos < size) {
    const rest = size - pos - 5;
    if (rest < 0) throw new RangeError(`copyDataBlock: ${size} bytes cannot hold whole messages`);
    // The last message takes what is left rather than leave too few bytes for a header.
    const body = rest <= bodyLength + 5 ? rest : bodyLength;
    block[pos] = BackendMessageType.CopyData;
    block.writeInt32BE(4 + body, pos + 1);
    for (let i = pos + 5; i < pos + 5 + body; i++) block[i] = (value = (value * 1103515245 + 12345) >>> 0) >>> 24;
    pos += 5 + body;
  }
  return block;
}

/** SHA-256 of `block` repeated `times` times. */
export function repeatedDigest(block: Buffer, times: number): string {
  const hash = createHash('sha256');
  for (let i = 0; i < times; i++) hash.update(block);
  return hash.digest('hex');
}
