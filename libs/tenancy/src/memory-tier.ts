// The in-process tier: answers per tenant id, bounded by count and by bytes (least recently
// used go first; a route counts for the length of its JSON).
// A route is fresh for `ttlMs`, then kept as a stale fallback until `staleMaxAgeMs` after it was
// stored, for stale-if-error. An "unknown tenant" is fresh for `negativeTtlMs` and never stale.
// Time is the injected monotonic clock, checked on access: no timers.
import { LRUCache } from 'lru-cache';
import type { RouteAnswer } from './route-answer.ts';
import type { TenantRoute } from './tenant.ts';

export interface MemoryTierOptions {
  readonly ttlMs: number;
  readonly negativeTtlMs: number;
  readonly staleMaxAgeMs: number;
  readonly maxEntries: number;
  readonly maxBytes: number;
  /** Monotonic milliseconds. */
  readonly now: () => number;
}

export interface StaleRoute {
  readonly route: TenantRoute;
  /** Since this process stored it (the route may have sat in Redis before). */
  readonly ageMs: number;
}

interface Entry {
  readonly answer: RouteAnswer;
  readonly storedAt: number;
  freshUntil: number;
  keepUntil: number;
}

/** What an entry costs besides its route: the entry object, the key, the LRU's own slots. */
const ENTRY_OVERHEAD = 200;

export class MemoryTier {
  readonly #options: MemoryTierOptions;
  readonly #entries: LRUCache<string, Entry>;

  constructor(options: MemoryTierOptions) {
    this.#options = options;
    this.#entries = new LRUCache<string, Entry>({
      max: options.maxEntries,
      maxSize: options.maxBytes,
      // Measured once, when stored. An "unknown" weighs its key and little more.
      sizeCalculation: (entry, tenantId) =>
        tenantId.length + (entry.answer.kind === 'found' ? JSON.stringify(entry.answer.route).length : 0) + ENTRY_OVERHEAD,
    });
  }

  /** The answer while it is fresh; undefined otherwise (an expired route stays for stale()). */
  fresh(tenantId: string): RouteAnswer | undefined {
    const entry = this.#entries.get(tenantId);
    if (entry === undefined) return undefined;
    const now = this.#options.now();
    if (now < entry.freshUntil) return entry.answer;
    if (now >= entry.keepUntil) this.#entries.delete(tenantId);
    return undefined;
  }

  /** The last route stored for the tenant, fresh or not, while younger than the stale limit. */
  stale(tenantId: string): StaleRoute | undefined {
    const entry = this.#entries.peek(tenantId);
    if (entry === undefined || entry.answer.kind !== 'found') return undefined;
    const now = this.#options.now();
    if (now >= entry.keepUntil) return undefined;
    return { route: entry.answer.route, ageMs: now - entry.storedAt };
  }

  set(tenantId: string, answer: RouteAnswer): void {
    const { ttlMs, negativeTtlMs, staleMaxAgeMs } = this.#options;
    const now = this.#options.now();
    const freshUntil = now + (answer.kind === 'found' ? ttlMs : negativeTtlMs);
    const keepUntil = answer.kind === 'found' ? Math.max(freshUntil, now + staleMaxAgeMs) : freshUntil;
    this.#entries.set(tenantId, { answer, storedAt: now, freshUntil, keepUntil });
  }

  /** Forgets the tenant entirely, stale fallback included: its record is known to have changed. */
  delete(tenantId: string): void {
    this.#entries.delete(tenantId);
  }

  /**
   * Makes every answer stale: the next lookups go to the next tier. Routes stay as stale
   * fallbacks (they may be outdated, which is what stale means); unknowns go.
   */
  expireAll(): void {
    for (const entry of this.#entries.values()) {
      entry.freshUntil = -Infinity;
      if (entry.answer.kind !== 'found') entry.keepUntil = -Infinity;
    }
  }

  /** Entries held, including expired ones not yet dropped. */
  get size(): number {
    return this.#entries.size;
  }

  /** What the entries held weigh, as counted against maxBytes. */
  get bytes(): number {
    return this.#entries.calculatedSize;
  }
}
