// PgBouncer as the peer users know, set up as a gateway would be: session pooling, TLS required
// from clients (its own certificate), TLS to the server with verify-full and a client
// certificate, SCRAM for clients against the role's secret copied from pg_authid. With that
// secret in auth_file PgBouncer logs in to the server with the keys recovered from the client's
// SCRAM exchange, as the gateway does.
// @see https://www.pgbouncer.org/config.html
import type { ChildProcess } from 'node:child_process';
import { chown, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { getFreePort } from '@tenantgate/testing';
import { startServer, stopServer, unprivilegedAccount, waitForPort, type Cleanup } from './processes.ts';

export const PGBOUNCER = process.env.BENCH_PGBOUNCER ?? '/usr/sbin/pgbouncer';

export interface PgBouncerOptions {
  /** Directory for the configuration and the log; its owner must be able to read it. */
  readonly dir: string;
  readonly database: string;
  readonly role: { readonly name: string; readonly scramSecret: string };
  readonly backend: { readonly host: string; readonly port: number };
  /** Client sessions it must hold at once (the idle-session measurement). */
  readonly maxClients: number;
  /**
   * `session` (the default): the peer of the gateway in the comparison, a server connection per
   * client. `transaction`: the gateway's backend for many idle sessions, `poolSize` server
   * connections shared by all.
   */
  readonly poolMode?: 'session' | 'transaction';
  readonly poolSize?: number;
  /** Checks client certificates against `pem.ca` (the gateway presents one to its backends). */
  readonly clientCertificates?: boolean;
  /** Prefix of its files in `dir` (two may share one); default `pgbouncer`. */
  readonly name?: string;
  /** PEM texts. */
  readonly pem: {
    readonly serverCert: string;
    readonly serverKey: string;
    readonly ca: string;
    readonly clientCert: string;
    readonly clientKey: string;
  };
}

export interface PgBouncerProcess {
  readonly child: ChildProcess;
  readonly pid: number;
  readonly port: number;
  readonly logFile: string;
}

/** Starts PgBouncer and registers its stop with `cleanup`. */
export async function startPgBouncer(options: PgBouncerOptions, cleanup: Cleanup): Promise<PgBouncerProcess> {
  const account = unprivilegedAccount();
  const port = await getFreePort();
  const name = options.name ?? 'pgbouncer';
  const files = {
    ini: join(options.dir, `${name}.ini`),
    users: join(options.dir, `${name}-userlist.txt`),
    serverCert: join(options.dir, `${name}.crt`),
    serverKey: join(options.dir, `${name}.key`),
    ca: join(options.dir, `${name}-ca.crt`),
    clientCert: join(options.dir, `${name}-client.crt`),
    clientKey: join(options.dir, `${name}-client.key`),
    log: join(options.dir, `${name}.log`),
  };
  const contents: [string, string][] = [
    [files.ini, configuration(options, port, files)],
    [files.users, `"${options.role.name}" "${options.role.scramSecret}"\n`],
    [files.serverCert, options.pem.serverCert],
    [files.serverKey, options.pem.serverKey],
    [files.ca, options.pem.ca],
    [files.clientCert, options.pem.clientCert],
    [files.clientKey, options.pem.clientKey],
    [files.log, ''],
  ];
  for (const [path, text] of contents) {
    await writeFile(path, text, { mode: 0o600 });
    if (account !== undefined) await chown(path, account.uid, account.gid);
  }
  const child = startServer(PGBOUNCER, [files.ini], {
    cwd: options.dir,
    env: { PATH: process.env.PATH ?? '' },
    logFile: files.log,
    account,
  });
  // SIGTERM is PgBouncer's immediate shutdown (SIGINT would wait for its clients to leave).
  cleanup.add(() => stopServer(child, 'SIGTERM'));
  await waitForPort(child, port, files.log, 'PgBouncer');
  return { child, pid: child.pid!, port, logFile: files.log };
}

type Files = Record<'users' | 'serverCert' | 'serverKey' | 'ca' | 'clientCert' | 'clientKey', string>;

function configuration(options: PgBouncerOptions, port: number, files: Files): string {
  const { backend, maxClients } = options;
  return [
    '[databases]',
    `${options.database} = host=${backend.host} port=${backend.port} dbname=${options.database}`,
    '',
    '[pgbouncer]',
    'listen_addr = 127.0.0.1',
    `listen_port = ${port}`,
    'unix_socket_dir =',
    `pool_mode = ${options.poolMode ?? 'session'}`,
    `max_client_conn = ${maxClients + 100}`,
    // In session mode every client of the idle-session measurement holds a server connection, as
    // through the gateway.
    `default_pool_size = ${options.poolSize ?? maxClients + 50}`,
    'auth_type = scram-sha-256',
    `auth_file = ${files.users}`,
    'client_tls_sslmode = require',
    `client_tls_cert_file = ${files.serverCert}`,
    `client_tls_key_file = ${files.serverKey}`,
    ...(options.clientCertificates === true ? [`client_tls_ca_file = ${files.ca}`] : []),
    'server_tls_sslmode = verify-full',
    `server_tls_ca_file = ${files.ca}`,
    `server_tls_cert_file = ${files.clientCert}`,
    `server_tls_key_file = ${files.clientKey}`,
    '',
  ].join('\n');
}

/**
 * WARNING and ERROR lines of its log: what went wrong during the run, if anything. Not the TLS
 * "unexpected eof" of clients that vanish without a close_notify: the bench ends its idle
 * sessions by killing pgbench.
 */
export function pgbouncerProblems(log: string): string[] {
  return log
    .split('\n')
    .filter((line) => / (WARNING|ERROR|FATAL) /.test(line))
    .filter((line) => !line.includes('unexpected eof while reading'));
}
