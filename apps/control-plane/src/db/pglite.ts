// The Database over an embedded PGlite (PostgreSQL compiled to WebAssembly) in a data directory:
// the store of a single control plane without DATABASE_URL. PGlite runs one transaction at a
// time (its own mutex serialises them), and one process may open a data directory: a second
// one (a control plane, `npm run migrate`) would corrupt it, so a pid file guards it.
import { mkdir, open, readFile, rm } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { PGlite } from '@electric-sql/pglite';
import { DatabaseKind, type Database } from './database.ts';

export const PGLITE_LOCK_FILE = 'tenantgate.pid';

/** Data directories this process has open (the pid file cannot tell them apart). */
const openHere = new Set<string>();

export class DataDirInUseError extends Error {
  readonly code = 'TG_ERR_DATA_DIR_IN_USE';
  constructor(dir: string, pid: number) {
    super(`the PGlite data directory ${dir} is in use by process ${pid}`);
    this.name = 'DataDirInUseError';
  }
}

/** @throws DataDirInUseError when another live process has the directory open */
export async function openPgliteDatabase(dataDir: string): Promise<Database> {
  const dir = resolve(dataDir);
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const unlock = await lockDataDir(dir);
  let db: PGlite;
  try {
    db = await PGlite.create(dir);
  } catch (error) {
    await unlock();
    throw error;
  }
  let closed: Promise<void> | undefined;
  return {
    kind: DatabaseKind.Pglite,
    query: (text, params) => runQuery(db, text, params),
    transaction: (work) => db.transaction((tx) => work({ query: (text, params) => runQuery(tx, text, params) })),
    close() {
      closed ??= (db.closed ? Promise.resolve() : db.close()).finally(unlock);
      return closed;
    },
  };
}

async function runQuery<Row extends object>(
  target: Pick<PGlite, 'query'>,
  text: string,
  params: readonly unknown[] | undefined,
): Promise<Row[]> {
  const result = await target.query<Row>(text, params === undefined ? undefined : [...params]);
  return result.rows;
}

/** Creates the pid file, replacing one left by a process that is gone; returns its removal. */
async function lockDataDir(dir: string): Promise<() => Promise<void>> {
  if (openHere.has(dir)) throw new DataDirInUseError(dir, process.pid);
  const file = join(dir, PGLITE_LOCK_FILE);
  for (;;) {
    try {
      const handle = await open(file, 'wx', 0o600);
      await handle.writeFile(`${process.pid}\n`);
      await handle.close();
      openHere.add(dir);
      return async () => {
        openHere.delete(dir);
        await rm(file, { force: true });
      };
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
    }
    const pid = Number.parseInt(await readFile(file, 'utf8').catch(() => ''), 10);
    if (isOtherLiveProcess(pid)) throw new DataDirInUseError(dir, pid);
    await rm(file, { force: true });
  }
}

function isOtherLiveProcess(pid: number): boolean {
  // Our own pid in a stale file: a container restarted with the same pid (often 1).
  if (!Number.isSafeInteger(pid) || pid <= 0 || pid === process.pid) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}
