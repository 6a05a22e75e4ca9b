// A stand-in backend for cancel tests: answers an SSLRequest with 'S', runs TLS with the run's
// backend certificate (asking for a client certificate), records the one startup packet that
// follows (a CancelRequest, with the client certificate's subject), and closes, as PostgreSQL
// does. Imported by tests only.
import { createServer as createTlsServer, type TLSSocket } from 'node:tls';
import type { TestContext } from 'node:test';
import type { TestPki } from '@tenantgate/testing';
import { FrameDecoder, FramePhase, parseStartupPacket, type StartupPacket } from '@tenantgate/wire';
import { startFakeBackend, type FakeBackend } from './backend-servers.ts';

export interface ReceivedCancel {
  readonly packet: StartupPacket;
  /** The raw packet as it arrived. */
  readonly bytes: Buffer;
  /** Subject of the client certificate the gateway presented. */
  readonly clientSubject: string | undefined;
}

export interface FakeCancelBackend extends FakeBackend {
  readonly received: ReceivedCancel[];
  /** Resolves once `count` packets have arrived. */
  waitForPackets(count: number, timeoutMs?: number): Promise<void>;
}

export async function startCancelBackend(t: TestContext, pki: TestPki): Promise<FakeCancelBackend> {
  const received: ReceivedCancel[] = [];
  const tlsServer = createTlsServer({
    cert: pki.backend.chainPem,
    key: pki.backend.keyPem,
    ca: pki.ca.certPem,
    requestCert: true,
    rejectUnauthorized: true,
    ALPNProtocols: ['postgresql'],
  });
  tlsServer.on('secureConnection', (socket: TLSSocket) => {
    socket.on('error', () => socket.destroy());
    const decoder = new FrameDecoder({ phase: FramePhase.Startup });
    socket.on('data', (chunk: Buffer) => {
      decoder.push(chunk);
      const frame = decoder.next();
      if (frame === null) return;
      const clientSubject = socket.getPeerX509Certificate()?.subject;
      received.push({ packet: parseStartupPacket(frame), bytes: Buffer.from(frame), clientSubject });
      socket.end();
    });
  });
  tlsServer.on('tlsClientError', () => {
    // The test asserts on the gateway's side.
  });
  const backend = await startFakeBackend(t, (socket) => {
    socket.once('data', (chunk: Buffer) => {
      socket.pause();
      socket.write('S');
      if (chunk.length > 8) socket.unshift(chunk.subarray(8));
      tlsServer.emit('connection', socket);
    });
  });
  return {
    ...backend,
    received,
    async waitForPackets(count, timeoutMs = 5000) {
      const deadline = Date.now() + timeoutMs;
      while (received.length < count) {
        if (Date.now() > deadline) throw new Error(`timed out: ${received.length} of ${count} packets`);
        await new Promise((resolve) => setTimeout(resolve, 10));
      }
    },
  };
}
