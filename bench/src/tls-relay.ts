// The floor of a proxy written in Node, measured beside the gateway: a bare TLS-to-TLS relay that
// answers the client's SSLRequest, terminates its TLS, opens PostgreSQL with an SSLRequest and
// TLS as a client (the same CA and client certificate as the gateway), and pipes the two sockets.
// It parses no message, authenticates nobody (PostgreSQL checks the client's SCRAM, without
// channel binding, which a relay's certificate would break) and logs nothing: the CPU it takes
// per query and per connection is what Node's TLS and streams cost before any gateway logic.
// Started by the bench as its own process (`node bench/src/tls-relay.ts`, RELAY_* variables).
import type { ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { connect, createServer, type Socket } from 'node:net';
import { join } from 'node:path';
import { connect as connectTls, createSecureContext, TLSSocket } from 'node:tls';
import { fileURLToPath } from 'node:url';
import { getFreePort } from '@tenantgate/testing';
import type { ProxyPemFiles } from './gateway-process.ts';
import { startServer, stopServer, waitForPort, type Cleanup } from './processes.ts';

const SSL_REQUEST = Buffer.from([0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f]);

export interface RelayProcess {
  readonly child: ChildProcess;
  readonly pid: number;
  readonly port: number;
  readonly logFile: string;
}

/** Starts the relay in front of PostgreSQL at 127.0.0.1:`backendPort`. */
export async function startTlsRelay(
  options: {
    readonly dir: string;
    readonly backendPort: number;
    readonly files: ProxyPemFiles;
  },
  cleanup: Cleanup,
): Promise<RelayProcess> {
  const logFile = join(options.dir, 'relay.log');
  await writeFile(logFile, '');
  const port = await getFreePort();
  const { edgeCert, edgeKey, ca, clientCert, clientKey } = options.files;
  const child = startServer(process.execPath, ['--conditions=@tenantgate/source', fileURLToPath(import.meta.url)], {
    cwd: options.dir,
    env: {
      PATH: process.env.PATH ?? '',
      RELAY_PORT: String(port),
      RELAY_BACKEND_PORT: String(options.backendPort),
      RELAY_CERT: edgeCert,
      RELAY_KEY: edgeKey,
      RELAY_CA: ca,
      RELAY_CLIENT_CERT: clientCert,
      RELAY_CLIENT_KEY: clientKey,
    },
    logFile,
  });
  cleanup.add(() => stopServer(child, 'SIGTERM'));
  await waitForPort(child, port, logFile, 'the Node TLS relay');
  return { child, pid: child.pid!, port, logFile };
}

function relay(env: NodeJS.ProcessEnv): void {
  const file = (name: string) => readFileSync(env[name]!);
  const serverContext = createSecureContext({ cert: file('RELAY_CERT'), key: file('RELAY_KEY') });
  const clientContext = createSecureContext({ ca: file('RELAY_CA'), cert: file('RELAY_CLIENT_CERT'), key: file('RELAY_CLIENT_KEY') });
  const backendPort = Number(env.RELAY_BACKEND_PORT);
  const server = createServer({ noDelay: true }, (socket) => {
    socket.on('error', () => socket.destroy());
    socket.once('data', (request) => {
      if (!request.equals(SSL_REQUEST)) return socket.destroy();
      socket.write('S');
      const client = new TLSSocket(socket, { isServer: true, secureContext: serverContext });
      const raw = connect({ host: '127.0.0.1', port: backendPort, noDelay: true }, () => raw.write(SSL_REQUEST));
      raw.on('error', () => client.destroy());
      raw.once('data', (answer) => {
        if (answer[0] !== 0x53) return end(client, raw);
        const backend = connectTls({ socket: raw, secureContext: clientContext, host: '127.0.0.1' });
        client.on('error', () => end(client, backend));
        backend.on('error', () => end(client, backend));
        client.pipe(backend).pipe(client);
      });
    });
  });
  server.listen(Number(env.RELAY_PORT), '127.0.0.1');
  process.on('SIGTERM', () => process.exit(0));
}

function end(...sockets: Socket[]): void {
  for (const socket of sockets) socket.destroy();
}

if (import.meta.main) relay(process.env);
