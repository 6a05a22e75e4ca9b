// `npm run tenantgate -- connect <tenant> <role> [--run]`: a login without a password. Makes a
// private key and a CSR here (the key never leaves this machine), has the control plane sign a
// short-lived certificate for the role, writes both with mode 0600 under the data directory, and
// prints the psql command that uses them (or runs it, with --run).
//
//   --control-plane URL   the control plane (default: where `npm start` or the demo runs it)
//   --gateway HOST:PORT   where the gateway listens (default: the same, else 127.0.0.1:6432)
//   --domain SUFFIX       the gateway's SNI suffix (default db.localhost)
//   --ca FILE             the CA that verifies the gateway (default <data>/certs/ca.crt)
//   --ttl SECONDS         the certificate's lifetime (default 3600)
// The admin token is TENANTGATE_ADMIN_TOKEN, else the one `npm start` keeps in <data>/tokens.json.
// @peculiar/x509's dependency injection needs the Reflect metadata API loaded first.
import 'reflect-metadata';
import * as x509 from '@peculiar/x509';
import { spawnSync } from 'node:child_process';
import { KeyObject, webcrypto } from 'node:crypto';
import { chmod, mkdir, readFile, writeFile } from 'node:fs/promises';
import { join, relative } from 'node:path';
import { parseArgs } from 'node:util';
import { parseListenAddress, type ListenAddress } from '@tenantgate/runtime';
import { conninfo } from '@tenantgate/testing';
import { DEV_DOMAIN } from './dev-certs.ts';
import { DATA_DIR, STACK_FILE, type StackFile } from './dev-stack.ts';

const USAGE =
  'usage: npm run tenantgate -- connect <tenant> <role> [--run] [--control-plane URL] [--gateway HOST:PORT] [--domain SUFFIX] [--ca FILE] [--ttl SECONDS]';

interface ConnectOptions {
  readonly tenant: string;
  readonly role: string;
  readonly controlPlane: string;
  readonly gateway: ListenAddress;
  readonly domain: string;
  readonly ca: string;
  readonly ttlSeconds: number;
  readonly run: boolean;
}

/** The files a login uses, and its psql connection string. */
interface Login {
  readonly certFile: string;
  readonly keyFile: string;
  readonly notAfter: string;
  readonly conninfo: string;
}

async function main(argv: readonly string[]): Promise<number> {
  const options = parseOptions(argv, await runningStack());
  if (typeof options === 'string') {
    process.stderr.write(`${options}\n${USAGE}\n`);
    return 2;
  }
  const login = await connect(options);
  if (typeof login === 'string') {
    process.stderr.write(`tenantgate connect: ${login}\n`);
    return 1;
  }
  if (options.run) return spawnSync('psql', [login.conninfo], { stdio: 'inherit' }).status ?? 1;
  process.stdout.write(`certificate for ${options.role} of ${options.tenant}, valid until ${login.notAfter}:\n`);
  process.stdout.write(`psql "${login.conninfo}"\n`);
  return 0;
}

/** The addresses of the stack `npm start` or the demo runs (written at its start), if any. */
async function runningStack(): Promise<Partial<StackFile>> {
  try {
    return JSON.parse(await readFile(join(DATA_DIR, STACK_FILE), 'utf8')) as StackFile;
  } catch {
    return {};
  }
}

function parseOptions(argv: readonly string[], stack: Partial<StackFile>): ConnectOptions | string {
  let parsed;
  try {
    parsed = parseArgs({
      args: [...argv],
      allowPositionals: true,
      options: {
        run: { type: 'boolean', default: false },
        'control-plane': { type: 'string', default: stack.controlPlaneUrl ?? 'http://127.0.0.1:8080' },
        gateway: { type: 'string', default: stack.gateway ?? '127.0.0.1:6432' },
        domain: { type: 'string', default: stack.domain ?? DEV_DOMAIN },
        ca: { type: 'string', default: join(DATA_DIR, 'certs', 'ca.crt') },
        ttl: { type: 'string', default: '3600' },
      },
    });
  } catch (error) {
    return (error as Error).message;
  }
  const [command, tenant, role, ...rest] = parsed.positionals;
  if (command !== 'connect' || tenant === undefined || role === undefined || rest.length > 0) return 'expected: connect <tenant> <role>';
  const gateway = parseListenAddress(parsed.values.gateway);
  if (gateway === undefined) return `--gateway: expected host:port, got "${parsed.values.gateway}"`;
  const ttlSeconds = Number(parsed.values.ttl);
  if (!Number.isInteger(ttlSeconds) || ttlSeconds < 60) return '--ttl: expected whole seconds, at least 60';
  return {
    tenant,
    role,
    controlPlane: parsed.values['control-plane'],
    gateway,
    domain: parsed.values.domain.replace(/^\./, ''),
    ca: parsed.values.ca,
    ttlSeconds,
    run: parsed.values.run,
  };
}

/** The key and CSR made here, the certificate from the control plane, both written 0600. */
async function connect(options: ConnectOptions): Promise<Login | string> {
  const token = process.env.TENANTGATE_ADMIN_TOKEN ?? (await storedAdminToken());
  if (token === undefined) return 'no admin token: set TENANTGATE_ADMIN_TOKEN (npm start keeps one in .data/tokens.json)';
  const algorithm = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' };
  const keys = await webcrypto.subtle.generateKey(algorithm, true, ['sign', 'verify']);
  const csr = await x509.Pkcs10CertificateRequestGenerator.create(
    { name: `CN=${options.role}`, keys, signingAlgorithm: algorithm },
    webcrypto,
  );
  const url = new URL(
    `/v1/tenants/${encodeURIComponent(options.tenant)}/roles/${encodeURIComponent(options.role)}/certificates`,
    options.controlPlane,
  );
  let response: Response;
  try {
    response = await fetch(url, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
      body: JSON.stringify({ csr: csr.toString('pem'), ttlSeconds: options.ttlSeconds }),
    });
  } catch (error) {
    return `cannot reach the control plane at ${options.controlPlane}: ${(error as Error).message}`;
  }
  const body = (await response.json().catch(() => ({}))) as { certificate?: string; notAfter?: string; message?: string };
  if (response.status !== 201 || body.certificate === undefined)
    return `the control plane answered ${response.status}: ${body.message ?? 'no certificate'}`;
  const dir = join(DATA_DIR, 'clients');
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const base = join(dir, `${options.tenant}-${options.role}`);
  const keyFile = `${base}.key`;
  const certFile = `${base}.crt`;
  await writePrivate(keyFile, KeyObject.from(keys.privateKey).export({ type: 'pkcs8', format: 'pem' }).toString());
  await writePrivate(certFile, body.certificate);
  const settings = {
    host: `${options.tenant}.${options.domain}`,
    hostaddr: options.gateway.host,
    port: String(options.gateway.port),
    user: options.role,
    dbname: 'postgres',
    sslmode: 'verify-full',
    sslrootcert: shown(options.ca),
    sslcert: shown(certFile),
    sslkey: shown(keyFile),
  };
  return { certFile, keyFile, notAfter: body.notAfter ?? '', conninfo: conninfo(settings) };
}

async function storedAdminToken(): Promise<string | undefined> {
  try {
    return (JSON.parse(await readFile(join(DATA_DIR, 'tokens.json'), 'utf8')) as { admin?: string }).admin;
  } catch {
    return undefined;
  }
}

/** libpq refuses a key file that others can read; the certificate is kept as private. */
async function writePrivate(file: string, content: string): Promise<void> {
  await writeFile(file, content, { mode: 0o600 });
  await chmod(file, 0o600);
}

/** A path as the person at this terminal can type it: relative when under the working directory. */
function shown(path: string): string {
  const rel = relative(process.cwd(), path);
  return rel.startsWith('..') ? path : rel;
}

process.exitCode = await main(process.argv.slice(2));
