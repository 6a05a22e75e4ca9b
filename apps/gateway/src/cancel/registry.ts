// Cancel keys (docs/architecture.md, "Cancel routing"). Each client gets the backend's process
// id with a random secret of its protocol's length (4 bytes under 3.0, 32 under 3.2); the pair
// maps to the backend holding the session and that backend's own key. A CancelRequest is looked
// up, rate-limited per address, and sent on as the backend's own CancelRequest over mTLS;
// unknown keys are dropped without a word, as PostgreSQL does. Keys live in a CancelKeyStore.
// @see https://www.postgresql.org/docs/current/protocol-flow.html#PROTOCOL-FLOW-CANCELING-REQUESTS
import { randomBytes } from 'node:crypto';
import type { SecureContext } from 'node:tls';
import { serializeCancelRequest } from '@tenantgate/wire';
import { openBackend, type OpenedBackend } from '../backend/index.ts';
import { takeIdleWatch } from '../backend/index.ts';
import type { TlsSessionCache } from '../backend/index.ts';
import { CancelResult, type GatewayMetrics } from '../telemetry/index.ts';
import { CancelRateLimiter, type CancelRateLimit } from './rate-limit.ts';

/** Key lengths the gateway issues: protocol 3.0 allows only 4 bytes; 3.2 gets 32, like PostgreSQL 18. */
export const CANCEL_KEY_LENGTH_V3_0 = 4;
export const CANCEL_KEY_LENGTH_V3_2 = 32;

/** The length of the key the gateway issues to a client speaking protocol 3.`minorVersion`. */
export function cancelKeyLength(minorVersion: number): number {
  return minorVersion >= 2 ? CANCEL_KEY_LENGTH_V3_2 : CANCEL_KEY_LENGTH_V3_0;
}

/** Where a session runs, and the backend's own key for it. Plain data, so a shared store can keep it. */
export interface CancelTarget {
  /** Names the TLS identity (CA, client certificate) to reach the backend with; see CancelForwardOptions. */
  readonly tenantId: string;
  readonly host: string;
  readonly port: number;
  /** The name the backend's certificate must carry; default `host`. */
  readonly serverName?: string;
  /** The backend's BackendKeyData. */
  readonly processId: number;
  /** 4 bytes from a 3.0 backend; 4..256 from 3.2 (PostgreSQL 18 sends 32). */
  readonly secretKey: Buffer;
}

/** The BackendKeyData the gateway sends its client. */
export interface CancelKey {
  readonly processId: number;
  readonly secretKey: Buffer;
}

export interface CancelEntry extends CancelKey {
  readonly target: CancelTarget;
}

/**
 * Where keys live, by the whole key (process id and secret). Keys are unique among live entries;
 * a store refuses a duplicate so the registry can draw another secret before the key reaches a
 * client. A shared store (Redis: `SET NX` with a TTL it refreshes for its own live entries) makes
 * a key known to every gateway of the fleet. Every method may be asynchronous; the registry never
 * assumes otherwise.
 */
export interface CancelKeyStore {
  /** Adds the entry; false (and nothing stored) when its key is taken. */
  add(entry: CancelEntry): Promise<boolean>;
  /** The entry, or undefined; throws CancelStoreUnavailable when a part that may hold it could not be asked. */
  get(key: CancelKey): Promise<CancelEntry | undefined>;
  /** Removes the entry of this key. */
  delete(key: CancelKey): Promise<void>;
  close(): Promise<void>;
}

/** A lookup found nothing here and could not ask the fleet's store (Redis down): the key may be another gateway's. */
export class CancelStoreUnavailable extends Error {
  constructor(options?: ErrorOptions) {
    super("cancel key not held here, and the fleet's store could not be asked", options);
    this.name = 'CancelStoreUnavailable';
  }
}

/** The map key of a cancel key: the process id and the secret, which together name one session. */
export function cancelKeyId(key: CancelKey): string {
  return `${key.processId}:${key.secretKey.toString('hex')}`;
}

/** The keys of this process's sessions. */
export class MemoryCancelKeyStore implements CancelKeyStore {
  readonly #entries = new Map<string, CancelEntry>();

  get size(): number {
    return this.#entries.size;
  }

  async add(entry: CancelEntry): Promise<boolean> {
    const id = cancelKeyId(entry);
    if (this.#entries.has(id)) return false;
    this.#entries.set(id, entry);
    return true;
  }

  async get(key: CancelKey): Promise<CancelEntry | undefined> {
    return this.#entries.get(cancelKeyId(key));
  }

  async delete(key: CancelKey): Promise<void> {
    this.#entries.delete(cancelKeyId(key));
  }

  async close(): Promise<void> {
    this.#entries.clear();
  }
}

export interface CancelRegistryOptions {
  /** Default: a MemoryCancelKeyStore. */
  readonly store?: CancelKeyStore;
  readonly metrics?: Pick<GatewayMetrics, 'cancelRequests'>;
  readonly rateLimit?: Partial<CancelRateLimit>;
  /** Clock for the rate limit (milliseconds); tests inject one. */
  readonly now?: () => number;
}

export interface CancelSession {
  readonly target: CancelTarget;
  /** The client's protocol minor version, which sets the length of the key it gets. */
  readonly clientMinorVersion: number;
}

/** What forward() needs to reach a backend: openBackend's options, less what the target gives. */
export interface CancelForwardOptions {
  /** The context for the target's tenant (from BackendTlsContexts: built once per identity). */
  readonly secureContext: (target: CancelTarget) => SecureContext | Promise<SecureContext>;
  readonly connectTimeoutMs: number;
  readonly tlsTimeoutMs?: number;
  readonly sessionCache?: TlsSessionCache;
  /** How long the backend has to close after the CancelRequest before it is destroyed (default 1 s). */
  readonly closeTimeoutMs?: number;
  readonly signal?: AbortSignal;
}

/** A client's CancelRequest, as the edge read it; its socket is already being closed (PostgreSQL answers nothing). */
export interface ClientCancel {
  readonly kind: 'cancel';
  readonly processId: number;
  readonly secretKey: Buffer;
  readonly tls: boolean;
  readonly clientAddress: string;
  readonly clientPort: number;
}

/** What forward() reads of a client's CancelRequest. */
export type CancelRequestInput = Pick<ClientCancel, 'processId' | 'secretKey' | 'clientAddress'>;

export interface CancelOutcome {
  readonly result: CancelResult;
  /** The session's tenant, when the key was known. */
  readonly tenantId?: string;
  /** Why a known key could not be forwarded (result `error`): for the caller's log line. */
  readonly error?: Error;
}

const CANCEL_CLOSE_TIMEOUT_MS = 1000;
/** Attempts at a free secret for a process id; a taken one (2^-32 under protocol 3.0) is drawn again. */
const MAX_DRAWS = 16;
const RESULT_LABELS = Object.fromEntries(Object.values(CancelResult).map((result) => [result, { result }])) as Record<
  CancelResult,
  { result: CancelResult }
>;

export class CancelRegistry {
  readonly #store: CancelKeyStore;
  readonly #limiter: CancelRateLimiter;
  readonly #metrics: CancelRegistryOptions['metrics'];

  constructor(options: CancelRegistryOptions = {}) {
    this.#store = options.store ?? new MemoryCancelKeyStore();
    this.#limiter = new CancelRateLimiter(options.rateLimit, options.now);
    this.#metrics = options.metrics;
  }

  /**
   * Issues the gateway's key for a session: the backend's process id and a random secret key of
   * the client's length, drawn again in the unlikely case that pair is held by a live session.
   * Send it in place of the backend's BackendKeyData, and unregister it when the session ends.
   */
  async register(session: CancelSession): Promise<CancelKey> {
    const processId = session.target.processId;
    for (let draw = 0; draw < MAX_DRAWS; draw++) {
      const secretKey = randomBytes(cancelKeyLength(session.clientMinorVersion));
      if (await this.#store.add({ processId, secretKey, target: session.target })) return { processId, secretKey };
    }
    throw new Error(`cancel registry: no free secret key in ${MAX_DRAWS} draws`);
  }

  async unregister(key: CancelKey): Promise<void> {
    await this.#store.delete(key);
  }

  /** The session a client's key names, or undefined. */
  async lookup(processId: number, secretKey: Buffer): Promise<CancelTarget | undefined> {
    const entry = await this.#store.get({ processId, secretKey });
    return entry?.target;
  }

  /**
   * Answers a client's CancelRequest: rate limit, lookup, then the backend's own CancelRequest over
   * a new mTLS connection, which is closed once the backend has read it. Never throws; the caller
   * logs the outcome and tells the client nothing.
   */
  async forward(request: CancelRequestInput, options: CancelForwardOptions): Promise<CancelOutcome> {
    const outcome = await this.#forward(request, options);
    this.#metrics?.cancelRequests.inc(RESULT_LABELS[outcome.result]);
    return outcome;
  }

  async close(): Promise<void> {
    await this.#store.close();
  }

  async #forward(request: CancelRequestInput, options: CancelForwardOptions): Promise<CancelOutcome> {
    let target: CancelTarget | undefined;
    let unavailable: CancelStoreUnavailable | undefined;
    try {
      target = await this.lookup(request.processId, request.secretKey);
    } catch (error) {
      if (!(error instanceof CancelStoreUnavailable)) return { result: CancelResult.Error, error: error as Error };
      unavailable = error;
    }
    // Guesses and real keys spend separate allowances: a flood of guesses from an address does
    // not stop the real clients behind it from cancelling.
    if (!this.#limiter.take(request.clientAddress, target === undefined ? 'guess' : 'match')) return { result: CancelResult.RateLimited };
    if (unavailable !== undefined) return { result: CancelResult.StoreUnavailable, error: unavailable };
    if (target === undefined) return { result: CancelResult.UnknownKey };
    try {
      await sendCancel(target, options);
      return { result: CancelResult.Forwarded, tenantId: target.tenantId };
    } catch (error) {
      return { result: CancelResult.Error, tenantId: target.tenantId, error: error as Error };
    }
  }
}

/** SSLRequest, 'S', mTLS (openBackend), then the backend's own CancelRequest and a close. */
/** The backend's own CancelRequest for `target`, over a new mutual-TLS connection (an operator ending a busy session uses it too). */
export async function sendCancel(target: CancelTarget, options: CancelForwardOptions): Promise<void> {
  const packet = serializeCancelRequest(target.processId, target.secretKey);
  const opened = await openBackend({
    host: target.host,
    port: target.port,
    serverName: target.serverName,
    secureContext: await options.secureContext(target),
    sessionCache: options.sessionCache,
    connectTimeoutMs: options.connectTimeoutMs,
    tlsTimeoutMs: options.tlsTimeoutMs,
    signal: options.signal,
  });
  await writeAndClose(opened, packet, options.closeTimeoutMs ?? CANCEL_CLOSE_TIMEOUT_MS);
}

/**
 * Writes the packet and half-closes. PostgreSQL reads the request, signals the session and closes
 * without a word; waiting for that close means the request was read. A backend that keeps the
 * connection open is destroyed after `timeoutMs`: the request went out all the same.
 */
function writeAndClose(opened: OpenedBackend, packet: Buffer, timeoutMs: number): Promise<void> {
  const { socket } = opened;
  takeIdleWatch(socket);
  return new Promise<void>((resolve, reject) => {
    let sent = false;
    let failure: Error | undefined;
    const timer = setTimeout(() => socket.destroy(), timeoutMs);
    socket.on('error', (error: Error) => (failure ??= error));
    socket.once('close', () => {
      clearTimeout(timer);
      if (sent) resolve();
      else reject(failure ?? new Error('the backend closed before the CancelRequest was sent'));
    });
    socket.on('data', () => {
      // PostgreSQL answers a CancelRequest with nothing; anything else is dropped.
    });
    socket.once('finish', () => (sent = true));
    socket.end(packet);
  });
}
