// The local compute driver (CONTROL_PLANE_COMPUTE_DRIVER=local): a tenant's compute is the
// cluster it was provisioned on, started and stopped with pg_ctl on the cluster's dataDirectory,
// so one machine shows tenants sleeping and waking. A wake restarts the server with the options
// it last ran with (pg_ctl restart reads postmaster.opts, and starts a stopped server); a suspend
// stops it (fast: sessions end) only when no other tenant on the cluster is awake. pg_ctl runs
// as the data directory's owner, since PostgreSQL refuses to run as root.
import { execFile } from 'node:child_process';
import { access, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { ComputeFailedError } from '../errors.ts';
import type { ComputeAction, ComputeDriver, ComputeResult, ComputeTarget } from './driver.ts';
import { verb } from './webhook.ts';

const run = promisify(execFile);
/** pg_ctl status: 0 running, 3 not running. */
const NOT_RUNNING = 3;
const WAIT_SECONDS = 60;

export interface LocalComputeOptions {
  /** Tenants on the cluster, other than this one, that are not sleeping. */
  awakeOnCluster(cluster: string, except: string): Promise<number>;
}

export class LocalComputeDriver implements ComputeDriver {
  readonly name = 'local';
  readonly #options: LocalComputeOptions;
  /** One pg_ctl at a time per data directory: a wake and a suspend of two of its tenants must not cross. */
  readonly #queues = new Map<string, Promise<unknown>>();

  constructor(options: LocalComputeOptions) {
    this.#options = options;
  }

  run(action: ComputeAction, target: ComputeTarget): Promise<ComputeResult> {
    const key = target.cluster?.dataDirectory ?? '';
    const previous = this.#queues.get(key) ?? Promise.resolve();
    const result = previous.catch(() => {}).then(() => this.#run(action, target));
    const settled = result.catch(() => {});
    this.#queues.set(key, settled);
    void settled.then(() => {
      if (this.#queues.get(key) === settled) this.#queues.delete(key);
    });
    return result;
  }

  async #run(action: ComputeAction, target: ComputeTarget): Promise<ComputeResult> {
    const dir = target.cluster?.dataDirectory;
    const fail = (why: string) => new ComputeFailedError(target.tenant, verb(action), why);
    if (target.cluster === undefined || dir === undefined) {
      throw fail("the local driver starts and stops a cluster's dataDirectory, and the tenant is on no cluster that gives one");
    }
    const pgCtl = new PgCtl(dir, await pgCtlPath(dir), await ownerOf(dir));
    if (action === 'wake') {
      if (await pgCtl.running()) return 'done';
      await pgCtl.run(['restart', '-m', 'fast', '-l', join(dir, 'tenantgate-compute.log')]).catch((error: Error) => {
        throw fail(error.message);
      });
      return 'done';
    }
    // The cluster is the compute of every tenant on it: one awake keeps it running.
    if ((await this.#options.awakeOnCluster(target.cluster.id, target.tenant)) > 0) return 'done';
    if (!(await pgCtl.running())) return 'done';
    await pgCtl.run(['stop', '-m', 'fast']).catch((error: Error) => {
      throw fail(error.message);
    });
    return 'done';
  }
}

class PgCtl {
  readonly #dir: string;
  readonly #path: string;
  readonly #owner: { uid: number; gid: number } | undefined;

  constructor(dir: string, path: string, owner: { uid: number; gid: number } | undefined) {
    this.#dir = dir;
    this.#path = path;
    this.#owner = owner;
  }

  async running(): Promise<boolean> {
    try {
      await this.#exec(['status']);
      return true;
    } catch (error) {
      if ((error as { code?: unknown }).code === NOT_RUNNING) return false;
      throw error;
    }
  }

  /** @throws an Error whose message is pg_ctl's own words */
  async run(args: readonly string[]): Promise<void> {
    try {
      await this.#exec([...args, '-w', '-t', String(WAIT_SECONDS)]);
    } catch (error) {
      const stderr = String((error as { stderr?: unknown }).stderr ?? '').trim();
      throw new Error(`pg_ctl ${args[0]} failed: ${stderr || (error as Error).message}`);
    }
  }

  async #exec(args: readonly string[]): Promise<void> {
    await run(this.#path, [...args, '-D', this.#dir], {
      ...(this.#owner ?? {}),
      timeout: (WAIT_SECONDS + 10) * 1000,
      // The server outlives pg_ctl: it must not hold this process's pipes.
      env: { PATH: process.env.PATH ?? '/usr/bin:/bin', LANG: 'C' },
    });
  }
}

/** The pg_ctl of the data directory's major version (Debian's layout), else the one on PATH. */
async function pgCtlPath(dir: string): Promise<string> {
  const version = (await readFile(join(dir, 'PG_VERSION'), 'utf8').catch(() => '')).trim();
  const packaged = `/usr/lib/postgresql/${version}/bin/pg_ctl`;
  if (
    version !== '' &&
    (await access(packaged).then(
      () => true,
      () => false,
    ))
  )
    return packaged;
  return 'pg_ctl';
}

/** Run as the directory's owner when this process is root (PostgreSQL refuses root). */
async function ownerOf(dir: string): Promise<{ uid: number; gid: number } | undefined> {
  if (process.getuid?.() !== 0) return undefined;
  const { uid, gid } = await stat(dir);
  return uid === 0 ? undefined : { uid, gid };
}
