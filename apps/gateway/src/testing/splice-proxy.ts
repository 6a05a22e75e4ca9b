// A tiny gateway for splice tests against a real PostgreSQL: 'S' to the client's SSLRequest, TLS
// with the run's backend certificate, the StartupMessage passed to the backend leg (openBackend +
// startBackendSession with the client certificate of `identity`, pg_hba `cert`), the startup
// messages replayed to the client, then splice(). No tenant, no client authentication: it stands
// in for the hand-over only. Imported by tests only.
import { once } from 'node:events';
import { createServer, type Socket } from 'node:net';
import type { TestContext } from 'node:test';
import { TLSSocket, createSecureContext } from 'node:tls';
import type { PostgresServer, TestPki } from '@tenantgate/testing';
import {
  FrameDecoder,
  FramePhase,
  parseStartupPacket,
  serializeAuthenticationOk,
  serializeBackendKeyData,
  serializeParameterStatus,
  serializeReadyForQuery,
  type StartupMessage,
} from '@tenantgate/wire';
import { openBackend, startBackendSession, type BackendSession } from '../backend/index.ts';
import { BackendTlsContexts, type BackendTlsIdentity } from '../backend/index.ts';
import type { GatewayMetrics } from '../telemetry/index.ts';
import { splice, type Splice, type SpliceCloseReason } from '../session/index.ts';

export interface ProxiedSession {
  readonly splice: Splice;
  /** The gateway's end of the client connection. */
  readonly client: TLSSocket;
  /** The backend session's socket. */
  readonly backend: TLSSocket;
  readonly closed: Promise<SpliceCloseReason>;
}

export interface SpliceProxy {
  readonly host: string;
  readonly port: number;
  /** Sessions in the order they reached the splice. */
  readonly sessions: ProxiedSession[];
  /** Resolves with the next session to reach the splice. */
  nextSession(): Promise<ProxiedSession>;
}

export interface SpliceProxyOptions {
  readonly db: PostgresServer;
  readonly pki: TestPki;
  /** The client certificate the proxy logs into the backend with (its CN is the user). */
  readonly identity: BackendTlsIdentity;
  readonly metrics?: Pick<GatewayMetrics, 'bytes' | 'activeSessions'>;
}

export async function startSpliceProxy(t: TestContext, options: SpliceProxyOptions): Promise<SpliceProxy> {
  const serverContext = createSecureContext({ cert: options.pki.backend.chainPem, key: options.pki.backend.keyPem });
  const backendContext = new BackendTlsContexts().get(options.identity);
  const sockets = new Set<Socket>();
  const sessions: ProxiedSession[] = [];
  const waiters: ((session: ProxiedSession) => void)[] = [];
  const server = createServer((raw) => {
    sockets.add(raw);
    raw.on('close', () => sockets.delete(raw));
    raw.on('error', () => raw.destroy());
    void handOver(raw).then(
      (session) => {
        sessions.push(session);
        waiters.shift()?.(session);
      },
      () => raw.destroy(),
    );
  });

  async function handOver(raw: Socket): Promise<ProxiedSession> {
    const client = await acceptTls(raw, serverContext);
    const startup = await readStartup(client);
    const opened = await openBackend({
      host: options.db.host,
      port: options.db.port,
      serverName: 'localhost',
      secureContext: backendContext,
      connectTimeoutMs: 5000,
    });
    const session = await startBackendSession(opened, { parameters: startup.parameters, auth: { kind: 'none' }, timeoutMs: 5000 });
    client.write(startupReplay(session));
    let settle: (reason: SpliceCloseReason) => void = () => {};
    const closed = new Promise<SpliceCloseReason>((resolve) => (settle = resolve));
    const s = splice(client, session.socket, {
      initialToClient: session.leftover.length > 0 ? [session.leftover] : [],
      transactionStatus: session.transactionStatus,
      metrics: options.metrics,
      onClose: (reason) => settle(reason),
    });
    return { splice: s, client, backend: session.socket, closed };
  }

  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  t.after(async () => {
    for (const session of sessions) session.splice.destroy();
    for (const socket of sockets) socket.destroy();
    server.close();
    await once(server, 'close');
  });
  return {
    host: '127.0.0.1',
    port: (server.address() as { port: number }).port,
    sessions,
    nextSession: () => new Promise((resolve) => waiters.push(resolve)),
  };
}

/** The SSLRequest, 'S', and the TLS handshake. */
async function acceptTls(raw: Socket, secureContext: ReturnType<typeof createSecureContext>): Promise<TLSSocket> {
  const [request] = (await once(raw, 'data')) as [Buffer];
  raw.pause();
  if (parseStartupPacket(request).kind !== 'SSLRequest') throw new Error('the splice proxy wants an SSLRequest first');
  raw.write('S');
  const tls = new TLSSocket(raw, { isServer: true, secureContext });
  tls.on('error', () => tls.destroy());
  await once(tls, 'secure');
  return tls;
}

function readStartup(socket: TLSSocket): Promise<StartupMessage> {
  const decoder = new FrameDecoder({ phase: FramePhase.Startup });
  return new Promise((resolve, reject) => {
    const onData = (chunk: Buffer): void => {
      decoder.push(chunk);
      const frame = decoder.next();
      if (frame === null) return;
      socket.off('data', onData);
      socket.pause();
      const packet = parseStartupPacket(frame);
      if (packet.kind === 'StartupMessage') resolve(packet);
      else reject(new Error(`the splice proxy wants a StartupMessage, got ${packet.kind}`));
    };
    socket.on('data', onData);
    socket.once('close', () => reject(new Error('closed before the StartupMessage')));
  });
}

/** What the client would have seen from the backend: AuthenticationOk through ReadyForQuery. */
function startupReplay(session: BackendSession): Buffer {
  const key = session.backendKey ?? { processId: 1, secretKey: Buffer.alloc(4) };
  return Buffer.concat([
    serializeAuthenticationOk(),
    ...session.parameterStatus.map(([name, value]) => serializeParameterStatus(name, value)),
    serializeBackendKeyData(key.processId, key.secretKey),
    serializeReadyForQuery(session.transactionStatus),
  ]);
}
