// The splice (docs/architecture.md, step 12): once a session is handed over, bytes go both ways
// as they arrive, without copying; a write that returns false pauses the other side until
// 'drain', so a slow reader holds the gateway's buffers to a few high-water marks. The
// backend→client stream runs through a MessageTracker (message boundaries and the last
// ReadyForQuery status) so drain can close an idle client between two messages. Either side
// ending ends the other; `onClose` runs once, after both sockets have closed.
import type { Duplex } from 'node:stream';
import { MessageTracker, TransactionStatus, serializeReadyForQuery, serializeTerminate } from '@tenantgate/wire';
import { Direction, type GatewayMetrics, type ProtocolTrace } from '../telemetry/index.ts';

export const SpliceCloseReason = {
  /** The client ended its side (Terminate and FIN, or a bare FIN), or its socket closed. */
  ClientClosed: 'client_closed',
  /** The backend ended its side (after a FATAL, a restart) or its socket closed. */
  BackendClosed: 'backend_closed',
  ClientError: 'client_error',
  /** A socket error, or a backend stream that lost its framing (a ProtocolError). */
  BackendError: 'backend_error',
  /** closeWhenIdle: the client got its FATAL at a message boundary. */
  Drained: 'drained',
  /** terminate(): an operator ended the session; the client got its FATAL at a message boundary. */
  Terminated: 'terminated',
  /** destroy() was called. */
  Destroyed: 'destroyed',
} as const;
export type SpliceCloseReason = (typeof SpliceCloseReason)[keyof typeof SpliceCloseReason];

export type SpliceCloseHandler = (reason: SpliceCloseReason, error: Error | undefined) => void;

export interface SpliceOptions {
  /** Backend bytes for the client first (a BackendSession's `leftover`), at a message boundary. */
  readonly initialToClient?: readonly Buffer[];
  /** Client bytes for the backend first (sent by the client before the splice began). */
  readonly initialToBackend?: readonly Buffer[];
  /**
   * Status of the last ReadyForQuery the client received before the splice (the session's
   * `transactionStatus`). Absent: unknown until one passes through, so no drain before that.
   */
  readonly transactionStatus?: TransactionStatus;
  /** `tenantgate_bytes_total` (batched) and `tenantgate_active_sessions` (+1 now, -1 at close). */
  readonly metrics?: Pick<GatewayMetrics, 'bytes' | 'activeSessions'>;
  /** Called once, after both sockets have closed; `error` for the `*_error` reasons and destroy(error). */
  readonly onClose?: SpliceCloseHandler;
  /** Bytes that may pile up before they are added to the metrics (default 1 MiB). */
  readonly metricsBatchBytes?: number;
  /** Longest time a session's bytes wait to be added to the metrics (default 5 s). */
  readonly metricsIntervalMs?: number;
  /** How long an ended side has to close before both are destroyed (default 2 s). */
  readonly closeGraceMs?: number;
}

export interface SpliceBytes {
  /** Backend bytes written to the client (the drain's FATAL not included). */
  readonly toClient: number;
  readonly toBackend: number;
}

export const SPLICE_METRICS_BATCH_BYTES = 1 << 20;
export const SPLICE_METRICS_INTERVAL_MS = 5000;
export const SPLICE_CLOSE_GRACE_MS = 2000;

const SpliceState = {
  /** Forwarding both ways. */
  Open: 'open',
  /** Forwarding, until the backend stream is idle at a message boundary (closeWhenIdle). */
  Draining: 'draining',
  /** terminate(): backend bytes up to the end of the message in flight, then the FATAL; client bytes dropped. */
  Terminating: 'terminating',
  /** The reason is decided; nothing more is forwarded, and what still comes is read and dropped. */
  Closing: 'closing',
  /** Both sockets have closed and onClose has run. */
  Closed: 'closed',
} as const;
type SpliceState = (typeof SpliceState)[keyof typeof SpliceState];

// Built once: nothing on the splice path allocates label objects or messages.
const TO_CLIENT = { direction: Direction.BackendToClient } as const;
const TO_BACKEND = { direction: Direction.ClientToBackend } as const;
const TERMINATE = serializeTerminate();
const READY: Readonly<Record<TransactionStatus, Buffer>> = {
  [TransactionStatus.Idle]: serializeReadyForQuery(TransactionStatus.Idle),
  [TransactionStatus.InTransaction]: serializeReadyForQuery(TransactionStatus.InTransaction),
  [TransactionStatus.Failed]: serializeReadyForQuery(TransactionStatus.Failed),
};

/** Starts splicing `client` (the TLS socket from the client) and `backend` (a BackendSession's socket). */
export function splice(client: Duplex, backend: Duplex, options: SpliceOptions = {}): Splice {
  return new Splice(client, backend, options);
}

export class Splice {
  readonly #client: Duplex;
  readonly #backend: Duplex;
  readonly #tracker = new MessageTracker();
  readonly #metrics: SpliceOptions['metrics'];
  readonly #onClose: SpliceCloseHandler | undefined;
  readonly #batchBytes: number;
  readonly #intervalMs: number;
  readonly #graceMs: number;
  #state: SpliceState = SpliceState.Open;
  #reason: SpliceCloseReason | undefined;
  #error: Error | undefined;
  #drainMessage: Buffer | undefined;
  #toClient = 0;
  #toBackend = 0;
  #countedToClient = 0;
  #countedToBackend = 0;
  #uncounted = 0;
  /**
   * `#toBackend` when the backend stream last became idle. Client bytes after that point are a
   * query the backend has not answered yet: the session is not idle, whatever the tracker says.
   */
  #toBackendAtIdle = -1;
  #clientClosed = false;
  #backendClosed = false;
  /** Made on the first bytes and re-armed with refresh(): an idle session has no timer running. */
  #flushTimer: NodeJS.Timeout | undefined;
  #flushArmed = false;
  #graceTimer: NodeJS.Timeout | undefined;
  /** A protocol trace of this session: untraced sessions hold none, and pay one check per chunk. */
  #trace: ProtocolTrace | undefined;

  constructor(client: Duplex, backend: Duplex, options: SpliceOptions = {}) {
    this.#client = client;
    this.#backend = backend;
    this.#metrics = options.metrics;
    this.#onClose = options.onClose;
    this.#batchBytes = positive(options.metricsBatchBytes ?? SPLICE_METRICS_BATCH_BYTES, 'metricsBatchBytes');
    this.#graceMs = positive(options.closeGraceMs ?? SPLICE_CLOSE_GRACE_MS, 'closeGraceMs');
    this.#intervalMs = positive(options.metricsIntervalMs ?? SPLICE_METRICS_INTERVAL_MS, 'metricsIntervalMs');
    this.#metrics?.activeSessions.inc();
    this.#attach();
    this.#start(options);
  }

  /** Status of the last ReadyForQuery sent to the client, or null before the first one. */
  get transactionStatus(): TransactionStatus | null {
    return this.#tracker.transactionStatus;
  }

  /**
   * The client waits for nothing: the last bytes it got end with ReadyForQuery `I`, and it has
   * sent nothing since. A FATAL written now lands between two messages and cuts no query.
   */
  get idle(): boolean {
    return this.#tracker.idle && this.#toBackendAtIdle === this.#toBackend;
  }

  get bytes(): SpliceBytes {
    return { toClient: this.#toClient, toBackend: this.#toBackend };
  }

  /** Why the splice closed or is closing; undefined while it forwards. */
  get closeReason(): SpliceCloseReason | undefined {
    return this.#reason;
  }

  /**
   * Drain: once the session is idle (now, if it is), writes `errorResponse` (FATAL 57P01) to the
   * client after the last whole message, sends Terminate to the backend, and closes both.
   * Until then bytes flow as before; a session that never becomes idle waits for destroy().
   */
  closeWhenIdle(errorResponse: Buffer): void {
    if (this.#state !== SpliceState.Open) return;
    this.#drainMessage = errorResponse;
    if (this.idle) this.#drain(SpliceCloseReason.Drained);
    else this.#state = SpliceState.Draining;
  }

  /**
   * Ends the session now, as pg_terminate_backend does, whatever it is doing: the client gets
   * `errorResponse` (FATAL 57P01) after the whole backend messages it has (a message in flight
   * is finished, never cut, and nothing after the chunk that finishes it goes out), the backend
   * gets Terminate, and both close. What the client
   * sends meanwhile is dropped. A query still running on the backend is the caller's to cancel.
   */
  terminate(errorResponse: Buffer): boolean {
    if (this.#state !== SpliceState.Open && this.#state !== SpliceState.Draining) return false;
    this.#drainMessage = errorResponse;
    if (this.#tracker.atBoundary) {
      this.#drain(SpliceCloseReason.Terminated);
      return true;
    }
    this.#state = SpliceState.Terminating;
    // A client that does not read holds the rest of the message back (the backend is paused for
    // it): after the grace time both sockets are cut, as pg_terminate_backend would cut them.
    this.#graceTimer = setTimeout(() => this.#fail(SpliceCloseReason.Terminated, undefined), this.#graceMs).unref();
    return true;
  }

  /**
   * Shows the trace every message from now on, each stream from its next message boundary (the
   * backend's from the tracker; the client's once the session is idle, or from a chunk that
   * starts with a whole message). The trace is dropped when it ends, and ended when the session does.
   */
  trace(trace: ProtocolTrace): void {
    this.#trace?.end('replaced');
    if (!this.#forwarding) return trace.end('session closed');
    if (!trace.active) return;
    this.#trace = trace;
    trace.spliced();
    trace.onEnd = () => {
      if (this.#trace === trace) this.#trace = undefined;
    };
  }

  /** Destroys both sockets at once (the drain deadline, the gateway stopping). */
  destroy(error?: Error): void {
    this.#fail(SpliceCloseReason.Destroyed, error);
  }

  #attach(): void {
    const client = this.#client;
    const backend = this.#backend;
    client.on('data', this.#onClientData);
    client.on('end', this.#onClientEnd);
    client.on('error', this.#onClientError);
    client.on('close', this.#onClientClose);
    backend.on('data', this.#onBackendData);
    backend.on('end', this.#onBackendEnd);
    backend.on('error', this.#onBackendError);
    backend.on('close', this.#onBackendClose);
    // Each side resumes the other when its buffer has gone out.
    client.on('drain', this.#onClientDrain);
    backend.on('drain', this.#onBackendDrain);
  }

  #start(options: SpliceOptions): void {
    // A ReadyForQuery the tracker did not see (the hand-over sent it) puts it in that state.
    if (options.transactionStatus !== undefined) this.#track(READY[options.transactionStatus]);
    // Backend bytes first: client bytes already read are unanswered queries, which must keep the
    // session from counting as idle even when the backend bytes end with ReadyForQuery I. Each
    // side's initial bytes leave in one write.
    this.#client.cork();
    this.#backend.cork();
    for (const chunk of options.initialToClient ?? []) if (chunk.length > 0) this.#onBackendData(chunk);
    for (const chunk of options.initialToBackend ?? []) if (chunk.length > 0) this.#onClientData(chunk);
    this.#client.uncork();
    this.#backend.uncork();
    // A socket that closed before the splice emits no 'close' for us; count it as closed.
    if (this.#client.closed || this.#client.destroyed) process.nextTick(this.#onClientClose);
    if (this.#backend.closed || this.#backend.destroyed) process.nextTick(this.#onBackendClose);
    if (!this.#backend.writableNeedDrain) this.#client.resume();
    if (!this.#client.writableNeedDrain) this.#backend.resume();
  }

  get #forwarding(): boolean {
    return this.#state === SpliceState.Open || this.#state === SpliceState.Draining || this.#state === SpliceState.Terminating;
  }

  readonly #onClientData = (chunk: Buffer): void => {
    // Terminating drops what the client sends: the session is over for it.
    if (this.#state !== SpliceState.Open && this.#state !== SpliceState.Draining) return;
    if (this.#trace !== undefined) this.#trace.fromClient(chunk, this.idle ? 0 : -1);
    this.#toBackend += chunk.length;
    if (!this.#backend.write(chunk)) this.#client.pause();
    this.#count(chunk.length);
  };

  readonly #onBackendData = (chunk: Buffer): void => {
    if (!this.#forwarding) return;
    const traceFrom = this.#trace !== undefined && this.#tracker.atBoundary ? 0 : -1;
    if (!this.#track(chunk)) return;
    if (this.#trace !== undefined) this.#trace.fromBackend(chunk, traceFrom === 0 ? 0 : this.#tracker.lastBoundary);
    // Terminating: the message in flight is finished, and nothing after it goes out.
    const boundary = this.#state === SpliceState.Terminating ? this.#tracker.lastBoundary : -1;
    const out = boundary >= 0 ? chunk.subarray(0, boundary) : chunk;
    this.#toClient += out.length;
    if (!this.#client.write(out)) this.#backend.pause();
    this.#count(out.length);
    if (boundary >= 0) this.#drain(SpliceCloseReason.Terminated);
    else if (this.#state === SpliceState.Draining && this.idle) this.#drain(SpliceCloseReason.Drained);
  };

  /** Follows a backend chunk; false (and both sockets destroyed) when the stream lost its framing. */
  #track(chunk: Buffer): boolean {
    try {
      this.#tracker.push(chunk);
    } catch (error) {
      this.#fail(SpliceCloseReason.BackendError, error as Error);
      return false;
    }
    if (this.#tracker.idle) this.#toBackendAtIdle = this.#toBackend;
    return true;
  }

  readonly #onClientDrain = (): void => {
    if (this.#forwarding) this.#backend.resume();
  };

  readonly #onBackendDrain = (): void => {
    if (this.#forwarding) this.#client.resume();
  };

  readonly #onClientEnd = (): void => this.#closeBoth(SpliceCloseReason.ClientClosed);
  readonly #onBackendEnd = (): void => this.#closeBoth(SpliceCloseReason.BackendClosed);
  readonly #onClientError = (error: Error): void => this.#fail(SpliceCloseReason.ClientError, error);
  readonly #onBackendError = (error: Error): void => this.#fail(SpliceCloseReason.BackendError, error);

  readonly #onClientClose = (): void => {
    if (this.#clientClosed) return;
    this.#clientClosed = true;
    this.#closeBoth(SpliceCloseReason.ClientClosed);
    this.#maybeFinish();
  };

  readonly #onBackendClose = (): void => {
    if (this.#backendClosed) return;
    this.#backendClosed = true;
    this.#closeBoth(SpliceCloseReason.BackendClosed);
    this.#maybeFinish();
  };

  #drain(reason: SpliceCloseReason): void {
    const message = this.#drainMessage as Buffer;
    if (!this.#beginClose(reason, undefined)) return;
    // The FATAL follows the last whole backend message. Terminate follows the client's last
    // message to the backend: whole after a drain (the session is idle); after terminate() the
    // client may have been mid-message, and PostgreSQL then ends the session on the broken
    // message or the close instead.
    endSocket(this.#client, message);
    endSocket(this.#backend, TERMINATE);
  }

  /** One side ended or closed: end the other once what was written to it is flushed. */
  #closeBoth(reason: SpliceCloseReason): void {
    if (!this.#beginClose(reason, undefined)) return;
    endSocket(this.#client, undefined);
    endSocket(this.#backend, undefined);
  }

  #fail(reason: SpliceCloseReason, error: Error | undefined): void {
    if (this.#state === SpliceState.Closed) return;
    this.#beginClose(reason, error);
    this.#destroyBoth();
  }

  /** Decides the reason (the first caller wins); false when it was already decided. */
  #beginClose(reason: SpliceCloseReason, error: Error | undefined): boolean {
    if (!this.#forwarding) return false;
    this.#state = SpliceState.Closing;
    this.#reason = reason;
    this.#error = error;
    // Read and drop whatever still comes: the peer's FIN is then seen, and unread bytes do
    // not turn our close into a reset that could discard what we wrote last.
    this.#client.resume();
    this.#backend.resume();
    clearTimeout(this.#graceTimer);
    this.#graceTimer = setTimeout(this.#destroyBoth, this.#graceMs).unref();
    this.#flushBytes();
    return true;
  }

  readonly #destroyBoth = (): void => {
    this.#client.destroy();
    this.#backend.destroy();
  };

  #maybeFinish(): void {
    if (!this.#clientClosed || !this.#backendClosed || this.#state === SpliceState.Closed) return;
    this.#state = SpliceState.Closed;
    clearTimeout(this.#graceTimer);
    clearTimeout(this.#flushTimer);
    this.#flushBytes();
    this.#metrics?.activeSessions.dec();
    this.#trace?.end(`session closed: ${this.#reason ?? SpliceCloseReason.Destroyed}`);
    this.#onClose?.(this.#reason ?? SpliceCloseReason.Destroyed, this.#error);
  }

  /** Bytes reach the metrics every `metricsBatchBytes`, or `metricsIntervalMs` after they moved. */
  #count(length: number): void {
    this.#uncounted += length;
    if (this.#uncounted >= this.#batchBytes) this.#flushBytes();
    else if (!this.#flushArmed && this.#metrics !== undefined) this.#armFlush();
  }

  #armFlush(): void {
    this.#flushArmed = true;
    if (this.#flushTimer === undefined) this.#flushTimer = setTimeout(this.#flushBytes, this.#intervalMs).unref();
    else this.#flushTimer.refresh();
  }

  readonly #flushBytes = (): void => {
    this.#uncounted = 0;
    this.#flushArmed = false;
    const bytes = this.#metrics?.bytes;
    if (bytes === undefined) return;
    if (this.#toClient > this.#countedToClient) bytes.inc(TO_CLIENT, this.#toClient - this.#countedToClient);
    if (this.#toBackend > this.#countedToBackend) bytes.inc(TO_BACKEND, this.#toBackend - this.#countedToBackend);
    this.#countedToClient = this.#toClient;
    this.#countedToBackend = this.#toBackend;
  };
}

function endSocket(socket: Duplex, last: Buffer | undefined): void {
  if (socket.destroyed || socket.writableEnded) return;
  if (last === undefined) socket.end();
  else socket.end(last);
}

function positive(value: number, what: string): number {
  if (!Number.isInteger(value) || value < 1) throw new RangeError(`splice: ${what} must be a positive integer, got ${value}`);
  return value;
}
