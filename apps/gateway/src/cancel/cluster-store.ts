// Cancel keys across the worker processes of one gateway (GATEWAY_WORKERS > 1). The kernel hands
// each new connection to any worker (reusePort), so a client's CancelRequest often lands on a
// worker that does not hold its session. Each worker keeps its own keys in memory; a key it does
// not know is asked of the primary, which asks every other worker and answers with the first
// entry found. The entry travels as plain data (secret keys in base64) over the IPC channel,
// which never leaves the machine.
// Map: docs/architecture.md, "Cancel routing".
import type { CancelEntry, CancelKey, CancelKeyStore, CancelTarget } from './registry.ts';
import { MemoryCancelKeyStore } from './registry.ts';

/** How long a worker waits for the other workers' answer; an unanswered cancel is dropped, as an unknown key is. */
export const CLUSTER_LOOKUP_TIMEOUT_MS = 1000;

/** IPC messages, tagged so they never mix with prom-client's metric requests on the same channel. */
export const ClusterMessage = {
  /** worker → primary: who holds this key? */
  Lookup: 'tenantgate:cancel-lookup',
  /** primary → worker: do you hold this key? */
  Find: 'tenantgate:cancel-find',
  /** worker → primary: the answer to Find. */
  Found: 'tenantgate:cancel-found',
  /** primary → worker: the answer to Lookup. */
  Result: 'tenantgate:cancel-result',
  /** worker → primary: the gateway is listening (the admin port's readiness counts these). */
  Listening: 'tenantgate:listening',
} as const;

export interface WireEntry {
  readonly processId: number;
  readonly secretKey: string;
  readonly target: Omit<CancelTarget, 'secretKey'> & { readonly secretKey: string };
}

export interface ClusterRequest {
  readonly type: string;
  readonly id: number;
  readonly processId: number;
  /** base64 */
  readonly secretKey: string;
}

export interface ClusterReply {
  readonly type: string;
  readonly id: number;
  readonly entry: WireEntry | null;
}

/** The IPC channel of a worker: `process` in a cluster worker; tests pass their own. */
export interface WorkerChannel {
  send(message: ClusterRequest | ClusterReply): void;
  on(event: 'message', listener: (message: unknown) => void): unknown;
  off(event: 'message', listener: (message: unknown) => void): unknown;
}

export function toWire(entry: CancelEntry): WireEntry {
  return {
    processId: entry.processId,
    secretKey: entry.secretKey.toString('base64'),
    target: { ...entry.target, secretKey: entry.target.secretKey.toString('base64') },
  };
}

export function fromWire(entry: WireEntry): CancelEntry {
  return {
    processId: entry.processId,
    secretKey: Buffer.from(entry.secretKey, 'base64'),
    target: { ...entry.target, secretKey: Buffer.from(entry.target.secretKey, 'base64') },
  };
}

export function isClusterMessage(message: unknown, type: string): message is ClusterRequest & ClusterReply {
  return typeof message === 'object' && message !== null && (message as { type?: unknown }).type === type;
}

/** A worker's keys: its own in memory, the others' through the primary. */
export class ClusterCancelKeyStore implements CancelKeyStore {
  readonly #local = new MemoryCancelKeyStore();
  readonly #channel: WorkerChannel;
  readonly #waiting = new Map<number, (entry: CancelEntry | undefined) => void>();
  readonly #timeoutMs: number;
  #nextId = 0;

  constructor(channel: WorkerChannel, timeoutMs = CLUSTER_LOOKUP_TIMEOUT_MS) {
    this.#channel = channel;
    this.#timeoutMs = timeoutMs;
    channel.on('message', this.#onMessage);
  }

  add(entry: CancelEntry): Promise<boolean> {
    return this.#local.add(entry);
  }

  delete(key: CancelKey): Promise<void> {
    return this.#local.delete(key);
  }

  async get(key: CancelKey): Promise<CancelEntry | undefined> {
    const local = await this.#local.get(key);
    if (local !== undefined) return local;
    const id = this.#nextId++;
    return new Promise((resolve) => {
      const timer = setTimeout(() => settle(undefined), this.#timeoutMs);
      const settle = (entry: CancelEntry | undefined): void => {
        clearTimeout(timer);
        this.#waiting.delete(id);
        resolve(entry);
      };
      this.#waiting.set(id, settle);
      this.#channel.send({ type: ClusterMessage.Lookup, id, processId: key.processId, secretKey: key.secretKey.toString('base64') });
    });
  }

  async close(): Promise<void> {
    this.#channel.off('message', this.#onMessage);
    for (const settle of this.#waiting.values()) settle(undefined);
    await this.#local.close();
  }

  readonly #onMessage = (message: unknown): void => {
    if (isClusterMessage(message, ClusterMessage.Result)) {
      this.#waiting.get(message.id)?.(message.entry === null ? undefined : fromWire(message.entry));
    } else if (isClusterMessage(message, ClusterMessage.Find)) {
      const key = { processId: message.processId, secretKey: Buffer.from(String(message.secretKey), 'base64') };
      void this.#local.get(key).then((entry) => {
        this.#channel.send({ type: ClusterMessage.Found, id: message.id, entry: entry === undefined ? null : toWire(entry) });
      });
    }
  };
}
