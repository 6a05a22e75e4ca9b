// Role passwords become SCRAM-SHA-256 secrets (pg_authid format, random salt) before anything is
// stored; the password itself is never kept or logged.
import { createScramSecret } from '@tenantgate/wire';

/** PostgreSQL's default (scram_iterations); the gateway's SCRAM cost is paid by clients. */
export const SCRAM_ITERATIONS = 4096;

export function hashPassword(password: string): Promise<string> {
  return createScramSecret(password, { iterations: SCRAM_ITERATIONS });
}
