// COPY throughput through psql: a table of about `megabytes` MB (in COPY text format) read out
// to /dev/null and written back in from a file. psql's \timing covers the COPY statement only,
// so connecting and authenticating are not in the figure.
import { stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { PostgresServer } from '@tenantgate/testing';
import { BENCH_DATABASE, BENCH_ROLE } from './gateway-stack.ts';
import { runCommand } from './processes.ts';

export const PSQL = process.env.BENCH_PSQL ?? 'psql';

const SOURCE_TABLE = 'copy_source';
const TARGET_TABLE = 'copy_target';
/** COPY text bytes of one row of `copy_source` (id, two md5s, a timestamp). */
const BYTES_PER_ROW = 97;
const MB = 1024 * 1024;

export interface CopyData {
  /** The table in COPY text format, what COPY in reads. */
  readonly file: string;
  readonly bytes: number;
}

/**
 * Creates the source table and an unlogged, empty target (COPY in then measures the protocol
 * and parsing rather than WAL), and writes the table's COPY text to a file through `env`.
 */
export async function prepareCopy(postgres: PostgresServer, env: NodeJS.ProcessEnv, dir: string, megabytes: number): Promise<CopyData> {
  const rows = Math.max(1, Math.round((megabytes * MB) / BYTES_PER_ROW));
  await postgres.sql(
    `create table ${SOURCE_TABLE} as
       select g as id, md5(g::text) as a, md5((-g)::text) as b, timestamptz '2024-05-17 09:31:22+00' + g * interval '1 s' as at
       from generate_series(1, ${rows}) g;
     alter table ${SOURCE_TABLE} owner to ${BENCH_ROLE};
     create unlogged table ${TARGET_TABLE} (like ${SOURCE_TABLE});
     alter table ${TARGET_TABLE} owner to ${BENCH_ROLE}`,
    [],
    { database: BENCH_DATABASE },
  );
  const file = join(dir, 'copy.txt');
  await psqlTimed(env, `copy ${SOURCE_TABLE} to stdout`, { output: file });
  return { file, bytes: (await stat(file)).size };
}

/** MB/s of COPY out, the rows sent to /dev/null. */
export async function copyOut(env: NodeJS.ProcessEnv, data: CopyData): Promise<number> {
  const seconds = await psqlTimed(env, `copy ${SOURCE_TABLE} to stdout`, { output: '/dev/null' });
  return data.bytes / MB / seconds;
}

/** MB/s of COPY in from the file, into the emptied target. */
export async function copyIn(env: NodeJS.ProcessEnv, data: CopyData, postgres: PostgresServer): Promise<number> {
  await postgres.sql(`truncate ${TARGET_TABLE}`, [], { database: BENCH_DATABASE });
  const seconds = await psqlTimed(env, `copy ${TARGET_TABLE} from stdin`, { input: data.file });
  return data.bytes / MB / seconds;
}

/** Runs one statement with \timing on; returns its time in seconds. */
async function psqlTimed(env: NodeJS.ProcessEnv, sql: string, io: { output?: string; input?: string }): Promise<number> {
  // -o takes the query output (COPY TO STDOUT rows included); the timing line still goes to stdout.
  const args = [
    '-X',
    '-q',
    '-w',
    '-v',
    'ON_ERROR_STOP=1',
    ...(io.output === undefined ? [] : ['-o', io.output]),
    '-c',
    '\\timing on',
    '-c',
    sql,
  ];
  const result = await runCommand(PSQL, args, { env, stdinFile: io.input, timeoutMs: 600_000 });
  if (result.timedOut) throw new Error(`psql -c '${sql}' hung: killed after 600 s`);
  if (result.code !== 0) throw new Error(`psql -c '${sql}' failed (exit code ${result.code}): ${result.stderr.trim()}`);
  const match = /^Time: ([0-9.]+) ms/m.exec(result.stdout);
  if (match === null) throw new Error(`psql -c '${sql}' printed no timing: ${result.stdout.slice(0, 200)}`);
  return Number(match[1]) / 1000;
}
