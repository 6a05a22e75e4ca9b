// Certificates reload when their files change (docs/architecture.md, "Drain and shutdown"), as
// well as on SIGHUP: cert-manager, a Kubernetes secret volume (a symlink swapped) or a renewal
// script replace files in place. Each file's status is polled (fs.watchFile: a stat per file and
// interval, which sees a replaced symlink or inode as surely as an edit); once the files have
// stopped changing for a moment (a renewal writes the certificate and its key one after the
// other), `reload` runs once for the whole change.
import { unwatchFile, watchFile, type Stats } from 'node:fs';

export const CERTIFICATE_POLL_MS = 2_000;
/** Changes this close together are one change. */
export const CERTIFICATE_SETTLE_MS = 500;

export interface CertificateFilesOptions {
  readonly paths: readonly string[];
  /** Reads and applies every certificate again; reports its own failures. */
  readonly reload: () => Promise<void>;
  readonly pollMs?: number;
  readonly settleMs?: number;
}

export class CertificateFiles {
  readonly #options: CertificateFilesOptions;
  readonly #listener = (current: Stats, previous: Stats): void => this.#changed(current, previous);
  #settle: NodeJS.Timeout | undefined;
  #reloading: Promise<void> = Promise.resolve();

  constructor(options: CertificateFilesOptions) {
    this.#options = options;
    const interval = options.pollMs ?? CERTIFICATE_POLL_MS;
    for (const path of new Set(options.paths)) watchFile(path, { interval, persistent: false }, this.#listener);
  }

  close(): void {
    clearTimeout(this.#settle);
    for (const path of new Set(this.#options.paths)) unwatchFile(path, this.#listener);
  }

  #changed(current: Stats, previous: Stats): void {
    // watchFile also calls when nothing that matters changed (an access time).
    if (current.mtimeMs === previous.mtimeMs && current.ino === previous.ino && current.size === previous.size) return;
    clearTimeout(this.#settle);
    this.#settle = setTimeout(() => {
      // One reload at a time: a change during a reload runs another after it.
      this.#reloading = this.#reloading.then(() => this.#options.reload());
    }, this.#options.settleMs ?? CERTIFICATE_SETTLE_MS);
    this.#settle.unref();
  }
}
