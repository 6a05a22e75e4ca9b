// One hand-written SASLInitialResponse and the server's reply to it: how a server answers a
// client-first-message that no well-behaved client sends, or what it shows an unknown role.
import { parseBackendMessage, serializeSASLInitialResponse, serializeStartupMessage, type BackendMessage } from '@tenantgate/wire';
import { FrameStream } from './frame-stream.ts';
import { requestTls, type TlsTarget } from './pg-login.ts';

export interface SaslReply {
  /** The mechanisms of the server's AuthenticationSASL. */
  offered: string[];
  /** The server's answer to the client-first-message (SASLContinue or ErrorResponse). */
  reply: BackendMessage;
}

export async function saslFirstReply(target: TlsTarget, user: string, mechanism: string, clientFirst: string): Promise<SaslReply> {
  const socket = await requestTls(target);
  try {
    const frames = new FrameStream(socket);
    socket.write(serializeStartupMessage({ minorVersion: 0, parameters: new Map([['user', user]]) }));
    const request = parseBackendMessage(await frames.next());
    if (request.kind !== 'AuthenticationSASL') throw new Error(`expected AuthenticationSASL, got ${request.kind}`);
    socket.write(serializeSASLInitialResponse(mechanism, Buffer.from(clientFirst, 'utf8')));
    return { offered: request.mechanisms, reply: parseBackendMessage(await frames.next()) };
  } finally {
    socket.destroy();
  }
}

/** Client-first-messages PostgreSQL 15 refuses, with the SQLSTATE it refuses each with. */
export const REFUSED_CLIENT_FIRST = [
  {
    what: "'y' (a channel binding downgrade) while PLUS is offered",
    mechanism: 'SCRAM-SHA-256',
    clientFirst: 'y,,n=,r=clientnonce',
    code: '28000',
  },
  {
    what: 'binding data with SCRAM-SHA-256',
    mechanism: 'SCRAM-SHA-256',
    clientFirst: 'p=tls-server-end-point,,n=,r=clientnonce',
    code: '08P01',
  },
  { what: 'SCRAM-SHA-256-PLUS without binding data', mechanism: 'SCRAM-SHA-256-PLUS', clientFirst: 'n,,n=,r=clientnonce', code: '08P01' },
  { what: 'the tls-unique binding type', mechanism: 'SCRAM-SHA-256-PLUS', clientFirst: 'p=tls-unique,,n=,r=clientnonce', code: '08P01' },
  { what: 'a mechanism that was not offered', mechanism: 'SCRAM-SHA-1', clientFirst: 'n,,n=,r=clientnonce', code: '08P01' },
] as const;
