// Test helpers for the client-facing phases: a listener whose next phase only tells the client
// what the gateway understood (FATAL XX000 `tenant=<id> user=<user> options=<options>`), and raw
// socket clients that speak the startup protocol byte by byte. Imported by tests only.
import { once } from 'node:events';
import { connect as connectTcp, type Socket } from 'node:net';
import { connect as connectTls, type ConnectionOptions, type TLSSocket } from 'node:tls';
import type { TestContext } from 'node:test';
import { Writable } from 'node:stream';
import {
  FrameDecoder,
  buildErrorResponse,
  parseBackendMessage,
  serializeSSLRequest,
  serializeStartupMessage,
  type BackendMessage,
  type NoticeFields,
} from '@tenantgate/wire';
import type { TestPki } from '@tenantgate/testing';
import type { ClientStartup } from '../edge/index.ts';
import type { ClientCancel } from '../cancel/index.ts';
import { startListener, type Listener, type ListenerConfig } from '../edge/index.ts';
import { createLogger } from '../telemetry/index.ts';
import { createMetrics, type GatewayMetrics } from '../telemetry/index.ts';
import { closeGracefully } from '../refusal.ts';
import { TlsContexts, type CertificateInput } from '../edge/index.ts';

export const SUFFIX = '.db.example.test';

export interface TestFrontOptions {
  readonly config?: Partial<ListenerConfig>;
  /** Defaults to the PKI's edge certificate for `.db.example.test`; null: no TLS at all. */
  readonly certificates?: readonly CertificateInput[] | null;
  /** Replaces the reply that tells the client what the gateway understood. */
  readonly onClient?: (client: ClientStartup) => void;
}

export interface TestFront {
  readonly port: number;
  readonly listener: Listener;
  readonly contexts: TlsContexts | undefined;
  readonly metrics: GatewayMetrics;
  /** Every handshake result so far, in order. */
  readonly clients: ClientStartup[];
  readonly cancels: ClientCancel[];
  /** Parsed JSON log lines. */
  readonly logs: Record<string, unknown>[];
  /** The next cancel request (or the one already received and not yet taken). */
  nextCancel(): Promise<ClientCancel>;
}

/** The message the test's next phase sends: what the gateway understood of the client. */
export function describeStartup(client: ClientStartup): string {
  const { parameters } = client.startup;
  return `tenant=${client.tenantId} user=${parameters.get('user')} options=${parameters.get('options') ?? ''}`;
}

export async function startTestFront(t: TestContext, pki: TestPki, options: TestFrontOptions = {}): Promise<TestFront> {
  const certificates = options.certificates === undefined ? [edgeCertificate(pki)] : options.certificates;
  const contexts = certificates === null ? undefined : new TlsContexts(certificates);
  const metrics = createMetrics();
  const logs: Record<string, unknown>[] = [];
  const logger = createLogger({ level: 'debug', destination: collectLines(logs) });
  const clients: ClientStartup[] = [];
  const cancels: ClientCancel[] = [];
  const cancelWaiters: ((request: ClientCancel) => void)[] = [];
  const listener = await startListener({
    config: { ...defaultConfig(certificates === null), ...options.config },
    contexts,
    logger,
    metrics,
    refusalGraceMs: 200,
    sessions: {
      serve(client: ClientStartup) {
        clients.push(client);
        client.socket.on('error', () => client.socket.destroy());
        if (options.onClient !== undefined) return options.onClient(client);
        const reply = buildErrorResponse({ severity: 'FATAL', code: 'XX000', message: describeStartup(client) });
        closeGracefully(client.socket, reply, 200);
      },
    },
    cancels: {
      forward(request: ClientCancel) {
        const waiter = cancelWaiters.shift();
        if (waiter === undefined) cancels.push(request);
        else waiter(request);
      },
    },
  });
  t.after(() => listener.close());
  return {
    port: listener.address.port,
    listener,
    contexts,
    metrics,
    clients,
    cancels,
    logs,
    nextCancel: () => {
      const ready = cancels.shift();
      return ready === undefined ? new Promise((resolve) => cancelWaiters.push(resolve)) : Promise.resolve(ready);
    },
  };
}

export function edgeCertificate(pki: TestPki): CertificateInput {
  return { suffixes: [SUFFIX], certPem: pki.edge.chainPem, keyPem: pki.edge.keyPem };
}

function defaultConfig(plaintextOnly: boolean): ListenerConfig {
  return {
    listen: { host: '127.0.0.1', port: 0 },
    sniSuffixes: [SUFFIX],
    allowPlaintext: plaintextOnly,
    handshakeTimeoutMs: 5000,
    maxPendingConnections: 100,
  };
}

function collectLines(into: Record<string, unknown>[]): Writable {
  return new Writable({
    write(chunk: Buffer, _encoding, callback) {
      for (const line of chunk.toString('utf8').split('\n')) if (line !== '') into.push(JSON.parse(line) as Record<string, unknown>);
      callback();
    },
  });
}

// ---------------------------------------------------------------------------------------------
// Raw clients

export async function connectRaw(port: number, localAddress?: string): Promise<Socket> {
  const socket = connectTcp({ host: '127.0.0.1', port, ...(localAddress === undefined ? {} : { localAddress }) });
  await once(socket, 'connect');
  return socket;
}

export interface Received {
  readonly bytes: Buffer;
  /** The error the socket ended with (a reset, a TLS alert), if any. */
  readonly error: Error | undefined;
}

/** Everything the socket receives until it closes. */
export function readUntilClose(socket: Socket): Promise<Received> {
  const chunks: Buffer[] = [];
  let error: Error | undefined;
  socket.on('data', (chunk: Buffer) => chunks.push(chunk));
  socket.on('error', (err) => (error = err));
  return new Promise((resolve) => socket.once('close', () => resolve({ bytes: Buffer.concat(chunks), error })));
}

/** The first `n` bytes the socket receives (the rest stays unread). */
export async function readBytes(socket: Socket, n: number): Promise<Buffer> {
  let have = Buffer.alloc(0);
  socket.resume();
  while (have.length < n) {
    const [chunk] = (await once(socket, 'data')) as [Buffer];
    have = Buffer.concat([have, chunk]);
  }
  socket.pause();
  if (have.length > n) socket.unshift(have.subarray(n));
  return have.subarray(0, n);
}

/** SSLRequest, 'S', then TLS as a client with `options` (servername, ca, ALPN...). */
export async function upgradeToTls(socket: Socket, options: ConnectionOptions): Promise<TLSSocket> {
  socket.write(serializeSSLRequest());
  const answer = await readBytes(socket, 1);
  if (answer.toString() !== 'S') throw new Error(`expected S, got ${answer.toString('hex')}`);
  const tls = connectTls({ ...options, socket });
  await once(tls, 'secureConnect');
  return tls;
}

export function startupMessage(parameters: Record<string, string>, minorVersion = 0, protocolOptions: Record<string, string> = {}): Buffer {
  return serializeStartupMessage({
    minorVersion,
    parameters: new Map(Object.entries(parameters)),
    protocolOptions: new Map(Object.entries(protocolOptions)),
  });
}

/** The server's messages in `bytes` (whole frames only). */
export function backendMessages(bytes: Buffer): BackendMessage[] {
  const decoder = new FrameDecoder();
  decoder.push(bytes);
  const messages: BackendMessage[] = [];
  for (let frame = decoder.next(); frame !== null; frame = decoder.next()) messages.push(parseBackendMessage(frame));
  return messages;
}

/** The fields of the single ErrorResponse in `bytes` (after any other messages). */
export function errorFields(bytes: Buffer): NoticeFields {
  const errors = backendMessages(bytes).filter((m) => m.kind === 'ErrorResponse');
  if (errors.length !== 1) throw new Error(`expected one ErrorResponse, got ${errors.length} in ${bytes.toString('hex')}`);
  return errors[0].fields;
}
