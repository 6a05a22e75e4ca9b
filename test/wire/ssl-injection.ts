// What a client sees when bytes ride along with its SSLRequest in one write, as a
// man-in-the-middle would inject them before the TLS handshake (CVE-2021-23214: the server
// must not take those unencrypted bytes as if they came over TLS).
import { once } from 'node:events';
import { connect as connectTcp } from 'node:net';
import { connect as connectTls } from 'node:tls';
import { FrameDecoder, parseBackendMessage, serializeSSLRequest, type BackendMessage } from '@tenantgate/wire';
import { ConnectionClosedError, FrameStream } from './frame-stream.ts';
import type { TlsTarget } from './pg-login.ts';

export interface InjectionOutcome {
  /** The first byte the server answered the SSLRequest with, as a character ('S', 'N', 'E'). */
  answer: string;
  /** Every message after it (over TLS when the answer was 'S'), up to the server's close. */
  messages: BackendMessage[];
}

/** A hung server fails the test in seconds, not at the runner's timeout. */
const IDLE_LIMIT_MS = 5_000;

export async function sslRequestFollowedBy(target: TlsTarget, injected: Buffer): Promise<InjectionOutcome> {
  const socket = connectTcp({ host: target.host, port: target.port });
  socket.setTimeout(IDLE_LIMIT_MS, () => socket.destroy(new Error('the server neither answered nor closed')));
  try {
    await once(socket, 'connect');
    socket.write(Buffer.concat([serializeSSLRequest(), injected]));
    const [reply] = (await once(socket, 'data')) as [Buffer];
    const answer = String.fromCharCode(reply[0]!);
    if (answer !== 'S') return { answer, messages: await plaintextMessages(socket, reply) };
    const tlsSocket = connectTls({ socket, servername: target.servername, ca: target.ca });
    await once(tlsSocket, 'secureConnect');
    return { answer, messages: await messagesUntilClose(new FrameStream(tlsSocket)) };
  } finally {
    socket.destroy();
  }
}

async function messagesUntilClose(frames: FrameStream): Promise<BackendMessage[]> {
  const messages: BackendMessage[] = [];
  for (;;) {
    try {
      messages.push(parseBackendMessage(await frames.next()));
    } catch (error) {
      if (error instanceof ConnectionClosedError) return messages;
      throw error;
    }
  }
}

/** A refusal in plaintext: the answer byte starts an ErrorResponse. */
async function plaintextMessages(socket: ReturnType<typeof connectTcp>, first: Buffer): Promise<BackendMessage[]> {
  const chunks = [first];
  socket.on('data', (chunk: Buffer) => chunks.push(chunk));
  await once(socket, 'close');
  const decoder = new FrameDecoder();
  decoder.push(Buffer.concat(chunks));
  const messages: BackendMessage[] = [];
  for (let frame = decoder.next(); frame !== null; frame = decoder.next()) messages.push(parseBackendMessage(frame));
  return messages;
}
