// SASLprep (RFC 4013, a profile of stringprep, RFC 3454) as PostgreSQL applies it to SCRAM
// passwords (src/common/saslprep.c). The RFC 3454 tables it needs are generated into
// saslprep-tables.ts by tools/saslprep-tables.py.
// @see https://www.rfc-editor.org/rfc/rfc4013

import { L_CAT, MAPPED_TO_NOTHING, NON_ASCII_SPACE, PROHIBITED, RAND_AL_CAT, UNASSIGNED } from './saslprep-tables.ts';

/**
 * Normalizes a password the way PostgreSQL does before hashing it. ASCII passes untouched; a
 * password that SASLprep rejects (prohibited or unassigned characters, bad bidi, empty after
 * mapping) is used as it is, since PostgreSQL then hashes the raw bytes rather than refuse it.
 */
export function saslprep(password: string): string {
  if (!/[\u0080-\uffff]/.test(password) || !password.isWellFormed()) return password;
  const mapped = mapPassword(password);
  // PostgreSQL checks the mapped string before normalizing it (RFC 4013 §2 checks the output);
  // we follow PostgreSQL, since our secrets and proofs must equal the ones it computes.
  if (mapped.length === 0 || !isAllowed(mapped)) return password;
  return mapped
    .map((cp) => String.fromCodePoint(cp))
    .join('')
    .normalize('NFKC');
}

/** RFC 4013 §2.1: non-ASCII spaces become SPACE, and RFC 3454 table B.1 maps to nothing. */
function mapPassword(password: string): number[] {
  const out: number[] = [];
  for (const char of password) {
    const cp = char.codePointAt(0) as number;
    if (inRanges(NON_ASCII_SPACE, cp)) out.push(0x20);
    else if (!inRanges(MAPPED_TO_NOTHING, cp)) out.push(cp);
  }
  return out;
}

/** RFC 4013 §2.3 (prohibited output), §2.5 (unassigned), §2.4 bidi rules of RFC 3454 §6. */
function isAllowed(cps: number[]): boolean {
  if (cps.some((cp) => inRanges(PROHIBITED, cp) || inRanges(UNASSIGNED, cp))) return false;
  if (!cps.some((cp) => inRanges(RAND_AL_CAT, cp))) return true;
  const first = cps[0];
  const last = cps[cps.length - 1];
  return !cps.some((cp) => inRanges(L_CAT, cp)) && inRanges(RAND_AL_CAT, first) && inRanges(RAND_AL_CAT, last);
}

/** Binary search of sorted, disjoint [start, end] pairs, flattened as the tables are. */
function inRanges(ranges: Uint32Array, cp: number): boolean {
  let low = 0;
  let high = ranges.length / 2 - 1;
  while (low <= high) {
    const mid = (low + high) >>> 1;
    if (cp < ranges[2 * mid]) high = mid - 1;
    else if (cp > ranges[2 * mid + 1]) low = mid + 1;
    else return true;
  }
  return false;
}
