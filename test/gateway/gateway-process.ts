// The gateway as its own process (apps/gateway/src/main.ts, as `npm run gateway` runs it), for
// tests of what only processes show: several instances sharing Redis, SIGKILL, start-up and
// shutdown. Its JSON log lines are collected for the test to wait on.
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { createInterface } from 'node:readline';
import type { TestContext } from 'node:test';
import { fileURLToPath } from 'node:url';
import { getFreePort, type TestPki } from '@tenantgate/testing';
import { SUFFIX } from './harness.ts';

export const GATEWAY_MAIN = fileURLToPath(new URL('../../apps/gateway/src/main.ts', import.meta.url));

export type LogLine = Record<string, unknown>;

export interface GatewayProcess {
  /** The Postgres port, as Gateway's address, so the harness's clients take either. */
  readonly address: { readonly host: string; readonly port: number };
  readonly adminPort: number;
  readonly child: ChildProcess;
  /** Every log line so far, parsed. */
  readonly lines: readonly LogLine[];
  /** The first log line that matches, waiting for it. */
  logLine(match: (line: LogLine) => boolean): Promise<LogLine>;
  /** A sample from the admin port's /metrics (0 when the series is absent). */
  metric(name: string, labels?: string): Promise<number>;
  /** Sends `signal` and waits for the exit. */
  stop(signal?: NodeJS.Signals): Promise<void>;
}

/**
 * The environment of a gateway on free ports of 127.0.0.1 serving the test PKI's edge
 * certificate, with its client certificate (CN `app`) for backends; `env` adds or overrides.
 */
export async function gatewayEnvironment(pki: TestPki, env: Record<string, string>): Promise<Record<string, string>> {
  const client = await pki.client('app');
  return {
    PATH: process.env.PATH ?? '',
    GATEWAY_LISTEN: `127.0.0.1:${await getFreePort()}`,
    GATEWAY_ADMIN_LISTEN: `127.0.0.1:${await getFreePort()}`,
    GATEWAY_TLS_CERT: pki.edge.chainPem,
    GATEWAY_TLS_KEY: pki.edge.keyPem,
    GATEWAY_SNI_SUFFIXES: SUFFIX,
    GATEWAY_BACKEND_CA: pki.ca.certPem,
    GATEWAY_BACKEND_CLIENT_CERT: client.chainPem,
    GATEWAY_BACKEND_CLIENT_KEY: client.keyPem,
    ...env,
  };
}

/** Starts the gateway process and waits for its `gateway listening` line; killed after the test. */
export async function startGatewayProcess(t: TestContext, env: Record<string, string>): Promise<GatewayProcess> {
  const child = spawn(process.execPath, ['--conditions=@tenantgate/source', GATEWAY_MAIN], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  t.after(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  });
  const lines: LogLine[] = [];
  let stderr = '';
  child.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const reading = (async () => {
    for await (const line of createInterface({ input: child.stdout! })) lines.push(JSON.parse(line) as LogLine);
  })();
  const exited = once(child, 'exit');
  const logLine = async (match: (line: LogLine) => boolean): Promise<LogLine> => {
    for (;;) {
      const line = lines.find(match);
      if (line !== undefined) return line;
      if (child.exitCode !== null || child.signalCode !== null) {
        await reading;
        const late = lines.find(match);
        if (late !== undefined) return late;
        throw new Error(`the gateway exited (${child.exitCode ?? child.signalCode}) before the log line came: ${stderr}`);
      }
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  };
  const [host, port] = splitAddress(env.GATEWAY_LISTEN!);
  const adminPort = Number(splitAddress(env.GATEWAY_ADMIN_LISTEN ?? ':0')[1]);
  await logLine((line) => line.msg === 'gateway listening');
  return {
    address: { host, port: Number(port) },
    adminPort,
    child,
    lines,
    logLine,
    metric: async (name, labels) => {
      const text = await (await fetch(`http://127.0.0.1:${adminPort}/metrics`)).text();
      const series = labels === undefined ? name : `${name}{${labels}}`;
      const line = text.split('\n').find((l) => l.startsWith(`${series} `));
      return line === undefined ? 0 : Number(line.split(' ').at(-1));
    },
    stop: async (signal = 'SIGTERM') => {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill(signal);
      await exited;
    },
  };
}

function splitAddress(address: string): [string, string] {
  const at = address.lastIndexOf(':');
  return [address.slice(0, at), address.slice(at + 1)];
}
