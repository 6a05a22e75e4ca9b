// Log lines about clients that have proven nothing (refused handshakes, failed logins, cancel
// requests) are capped per kind and second, so a flood costs a few lines, not one line per
// attempt; the first line after a capped second says how many were dropped. Metrics still count
// every one.
// Map: docs/architecture.md, "Inside the gateway".
import type { Logger } from './logger.ts';

/** Lines of one kind per second (each kind counts apart). */
export const CLIENT_LINES_PER_SECOND = 20;

interface Window {
  start: number;
  written: number;
  dropped: number;
}

export class LogRateLimit {
  readonly #perSecond: number;
  readonly #now: () => number;
  readonly #windows = new Map<string, Window>();

  constructor(perSecond = CLIENT_LINES_PER_SECOND, now: () => number = () => performance.now()) {
    this.#perSecond = perSecond;
    this.#now = now;
  }

  /**
   * Whether a line of `kind` may be written now: the number of lines dropped since the last one
   * written (usually 0), or undefined when this one is to be dropped.
   */
  take(kind: string): number | undefined {
    const now = this.#now();
    let window = this.#windows.get(kind);
    if (window === undefined) this.#windows.set(kind, (window = { start: now, written: 0, dropped: 0 }));
    if (now - window.start >= 1000) {
      window.start = now;
      window.written = 0;
    }
    if (window.written >= this.#perSecond) {
      window.dropped++;
      return undefined;
    }
    window.written++;
    const dropped = window.dropped;
    window.dropped = 0;
    return dropped;
  }
}

const clientLines = new LogRateLimit();

/** Writes `message` at `level` unless this second's lines of its kind are spent; `dropped` is added when some were. */
export function logClientEvent(
  log: Logger,
  level: 'debug' | 'info' | 'warn' | 'error',
  fields: Record<string, unknown>,
  message: string,
): void {
  if (!log.isLevelEnabled(level)) return;
  const dropped = clientLines.take(message);
  if (dropped === undefined) return;
  log[level](dropped === 0 ? fields : { ...fields, dropped }, message);
}
