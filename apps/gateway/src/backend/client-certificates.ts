// Tenants' client certificates under GATEWAY_SECRETS_DIR, and the key that makes SCRAM mock salts
// for unknown roles.
// Map: docs/architecture.md, step 10.
import { createHmac, createPrivateKey } from 'node:crypto';
import { join } from 'node:path';
import { CERTIFICATE_REF_PATTERN } from '@tenantgate/tenancy';
import { readPemSource } from '@tenantgate/runtime';
import type { ClientCertificatePem } from './tls.ts';
import { SecretsError } from '../errors.ts';

/** A file of the secrets directory; a failure names the certificate (`what`) and the file. */
async function readSecretFile(path: string, what: string): Promise<string> {
  try {
    return await readPemSource({ kind: 'path', path });
  } catch (error) {
    throw new SecretsError(`${what}: ${(error as Error).message}`, { cause: error });
  }
}

const REFERENCE = new RegExp(CERTIFICATE_REF_PATTERN);

/**
 * Tenants' client certificates, `<dir>/<name>.crt` and `<name>.key`, read once and kept until
 * `clear()` (SIGHUP), so a connection costs no file I/O. Private keys never travel through the
 * control plane: the tenant record only names them.
 */
export class ClientCertificateStore {
  readonly #dir: string | undefined;
  readonly #cache = new Map<string, Promise<ClientCertificatePem>>();

  constructor(dir: string | undefined) {
    this.#dir = dir;
  }

  get(name: string): Promise<ClientCertificatePem> {
    let entry = this.#cache.get(name);
    if (entry === undefined) {
      entry = this.#read(name);
      // A failed read is not cached: the file may be put in place before the next connection.
      entry.catch(() => this.#cache.delete(name));
      this.#cache.set(name, entry);
    }
    return entry;
  }

  clear(): void {
    this.#cache.clear();
  }

  async #read(name: string): Promise<ClientCertificatePem> {
    if (this.#dir === undefined) throw new SecretsError(`client certificate "${name}" named, but GATEWAY_SECRETS_DIR is not set`);
    // The schema already forbids separators; checked again because the name crosses a trust boundary.
    if (!REFERENCE.test(name)) throw new SecretsError(`client certificate name "${name}" is not a plain file name`);
    const [certPem, keyPem] = await Promise.all([
      readSecretFile(join(this.#dir, `${name}.crt`), `client certificate "${name}"`),
      readSecretFile(join(this.#dir, `${name}.key`), `client key "${name}"`),
    ]);
    return { certPem, keyPem };
  }
}

/**
 * The key of SCRAM mock salts for unknown roles. It must be the same on every gateway of the
 * fleet and across restarts, or an unknown role's salt would change between connections and
 * give it away. Derived from the edge TLS private key, which the fleet already shares.
 */
export function scramMockKey(edgeKeyPem: string): Buffer {
  const der = createPrivateKey(edgeKeyPem).export({ format: 'der', type: 'pkcs8' });
  return createHmac('sha256', 'tenantgate scram mock key v1').update(der).digest();
}
