// The tiny database interface the repository is written against: parameterised queries and
// transactions. Two implementations: a pg.Pool (DATABASE_URL) and an embedded PGlite (a data
// directory), so the same SQL runs on both.

/** Something that runs one SQL statement with `$n` parameters and returns its rows. */
export interface Queryable {
  query<Row extends object = Record<string, unknown>>(text: string, params?: readonly unknown[]): Promise<Row[]>;
}

export const DatabaseKind = {
  Postgres: 'postgres',
  Pglite: 'pglite',
} as const;
export type DatabaseKind = (typeof DatabaseKind)[keyof typeof DatabaseKind];

export interface Database extends Queryable {
  readonly kind: DatabaseKind;
  /**
   * Runs `work` in one transaction on one connection: committed when it resolves, rolled back
   * when it throws (the error is rethrown). Queries inside must go through `tx`.
   */
  transaction<T>(work: (tx: Queryable) => Promise<T>): Promise<T>;
  /** Closes every connection; idempotent. */
  close(): Promise<void>;
}
