// A cluster's admin credential, named by the cluster record and read from CONTROL_PLANE_SECRETS_DIR
// each time it is used (docs/architecture.md, "Clusters"): `<name>.crt` + `<name>.key` (a client
// certificate) or `<name>.password`. Private keys and passwords never travel through the API or
// into the store, and a rotated file takes effect on the next connection.
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';

export type AdminCredential =
  { readonly kind: 'certificate'; readonly cert: string; readonly key: string } | { readonly kind: 'password'; readonly password: string };

/** Why a credential name gives no credential, or the credential. */
export async function readCredential(dir: string, name: string): Promise<AdminCredential | string> {
  const [cert, key, password] = await Promise.all(
    ['crt', 'key', 'password'].map((ext) => readFile(join(dir, `${name}.${ext}`), 'utf8').catch(() => undefined)),
  );
  if (cert !== undefined && key !== undefined) return { kind: 'certificate', cert, key };
  if (password !== undefined) {
    // A trailing newline is the file's, not the password's (echo secret > name.password).
    const trimmed = password.replace(/\r?\n$/, '');
    if (trimmed !== '') return { kind: 'password', password: trimmed };
    return `${name}.password in the secrets directory is empty`;
  }
  if (cert !== undefined || key !== undefined) {
    return `${name}.${cert === undefined ? 'crt' : 'key'} is missing beside ${name}.${cert === undefined ? 'key' : 'crt'} in the secrets directory`;
  }
  return `the secrets directory has neither ${name}.crt with ${name}.key nor ${name}.password`;
}
