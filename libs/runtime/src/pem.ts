// Certificates and keys given as a file path or as the PEM text itself (secret stores such as
// ECS put the PEM into the variable).
import { readFile } from 'node:fs/promises';
import { describeSystemError } from './system-errors.ts';

export type PemSource = { readonly kind: 'path'; readonly path: string } | { readonly kind: 'pem'; readonly pem: string };

export const PEM_BEGIN = '-----BEGIN ';
const PEM_SHAPE = {
  certificate: /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/,
  // Encrypted keys are refused here rather than at the handshake: there is no passphrase variable.
  key: /-----BEGIN (RSA |EC )?PRIVATE KEY-----(?![\s\S]*ENCRYPTED)[\s\S]+?-----END \1?PRIVATE KEY-----/,
} as const;
export type PemKind = keyof typeof PEM_SHAPE;

/**
 * A value that starts with `-----BEGIN` is PEM text, any other a file path; undefined when it is
 * neither. Some secret stores keep PEM on one line with `\n` escapes; those are turned back into
 * newlines.
 */
export function pemSource(item: string, kind: PemKind): PemSource | undefined {
  if (!item.startsWith(PEM_BEGIN)) return item === '' || item.includes('\n') ? undefined : { kind: 'path', path: item };
  const pem = item.includes('\n') ? item : item.replaceAll('\\n', '\n');
  return PEM_SHAPE[kind].test(pem) ? { kind: 'pem', pem } : undefined;
}

/** The PEM text: as given, or read from its file. @throws PemReadError */
export async function readPemSource(source: PemSource): Promise<string> {
  if (source.kind === 'pem') return source.pem;
  try {
    return await readFile(source.path, 'utf8');
  } catch (error) {
    throw new PemReadError(source.path, error);
  }
}

/** A PEM file that cannot be read; the message is `cannot read <path>: <reason>`. */
export class PemReadError extends Error {
  readonly code = 'TG_ERR_PEM_READ';
  readonly path: string;
  constructor(path: string, cause: unknown) {
    super(`cannot read ${path}: ${describeSystemError(cause)}`, { cause });
    this.name = 'PemReadError';
    this.path = path;
  }
}
