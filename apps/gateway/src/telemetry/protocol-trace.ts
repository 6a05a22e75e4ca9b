// The protocol trace (docs/architecture.md, "Protocol trace"): for one session, or the next
// connections of a tenant, every message in each direction becomes one debug line with its
// direction, name, length and the fields describeBackendMessage / describeFrontendMessage give
// (secrets redacted, query text only when asked for). A trace ends by itself: at its deadline,
// after TRACE_MAX_MESSAGES lines, or with its connection. Untraced connections do no work for
// it: the legs hold no trace, and the splice checks one field per chunk.
import {
  describeBackendMessage,
  describeFrontendMessage,
  describeStartupParameters,
  passwordResponseAfter,
  BackendMessageType,
  FrontendMessageType,
  type PasswordResponseKind,
} from '@tenantgate/wire';
import type { Logger } from './logger.ts';

/** What a leg (edge authentication, the backend's startup) tells the trace of its socket. */
export interface WireTap {
  /** Bytes read from the peer, as they came. */
  read(chunk: Buffer): void;
  /** Whole messages the gateway wrote to the peer. */
  wrote(bytes: Buffer): void;
}

export interface ProtocolTraceOptions {
  /** Date.now() when the trace ends by itself. */
  readonly until: number;
  /** Query text, notification payloads and error messages in the lines (they may hold data). */
  readonly includeQueries: boolean;
}

/** Lines one trace writes at most: a trace left on a busy session must not flood the log. */
export const TRACE_MAX_MESSAGES = 10_000;

/** Who sent a message and who it was for. */
export const TraceDirection = {
  ClientToGateway: 'client>gateway',
  GatewayToClient: 'gateway>client',
  GatewayToBackend: 'gateway>backend',
  BackendToGateway: 'backend>gateway',
  ClientToBackend: 'client>backend',
  BackendToClient: 'backend>client',
} as const;
export type TraceDirection = (typeof TraceDirection)[keyof typeof TraceDirection];

/** Body bytes kept of one message: enough for the longest text a description carries. */
const KEPT_BODY_BYTES = 4608;
const FRONTEND_TYPES = new Set<number>(Object.values(FrontendMessageType));
/** No frontend message after the startup packet comes near this; a larger header is not a header. */
const PLAUSIBLE_LENGTH = 1 << 30;

type MessageHandler = (type: number, length: number, body: Buffer) => void;

/**
 * One direction's bytes cut into messages, keeping the first KEPT_BODY_BYTES of each body.
 * Started in the middle of a stream it waits for a message boundary: one the caller knows
 * (`syncOffset`), or, given `guessTypes`, a chunk that starts with a whole message of one of
 * those types (clients write whole messages, so their chunks nearly always start with one).
 */
class MessageStream {
  readonly #types: ReadonlySet<number> | undefined;
  readonly #onMessage: MessageHandler;
  #synced: boolean;
  readonly #header = Buffer.alloc(5);
  #headerFilled = 0;
  #type = 0;
  #length = 0;
  #remaining = 0;
  #kept: Buffer[] = [];
  #keptBytes = 0;

  constructor(guessTypes: ReadonlySet<number> | undefined, synced: boolean, onMessage: MessageHandler) {
    this.#types = guessTypes;
    this.#synced = synced;
    this.#onMessage = onMessage;
  }

  /** `syncOffset`: where a message starts in `chunk`, when the caller knows; -1 when it does not. */
  push(chunk: Buffer, syncOffset: number): void {
    let pos = 0;
    if (!this.#synced) {
      if (syncOffset >= 0) pos = syncOffset;
      else if (!this.#startsWithMessage(chunk)) return;
      this.#synced = true;
    }
    while (pos < chunk.length) pos = this.#remaining > 0 ? this.#body(chunk, pos) : this.#headerByte(chunk, pos);
  }

  #startsWithMessage(chunk: Buffer): boolean {
    if (this.#types === undefined || chunk.length < 5 || !this.#types.has(chunk[0] as number)) return false;
    const length = chunk.readUInt32BE(1);
    return length >= 4 && length < PLAUSIBLE_LENGTH && length + 1 <= chunk.length;
  }

  #headerByte(chunk: Buffer, pos: number): number {
    this.#header[this.#headerFilled++] = chunk[pos] as number;
    if (this.#headerFilled < 5) return pos + 1;
    this.#headerFilled = 0;
    this.#type = this.#header[0] as number;
    this.#length = this.#header.readUInt32BE(1);
    this.#remaining = this.#length - 4;
    if (this.#remaining <= 0) this.#complete();
    return pos + 1;
  }

  #body(chunk: Buffer, pos: number): number {
    const take = Math.min(this.#remaining, chunk.length - pos);
    const keep = Math.min(take, KEPT_BODY_BYTES - this.#keptBytes);
    if (keep > 0) {
      // A copy: the chunk belongs to the socket, and a message may span several.
      this.#kept.push(Buffer.from(chunk.subarray(pos, pos + keep)));
      this.#keptBytes += keep;
    }
    this.#remaining -= take;
    if (this.#remaining === 0) this.#complete();
    return pos + take;
  }

  #complete(): void {
    const body = this.#kept.length === 1 ? (this.#kept[0] as Buffer) : Buffer.concat(this.#kept);
    this.#kept = [];
    this.#keptBytes = 0;
    this.#remaining = 0;
    this.#onMessage(this.#type, this.#length, body);
  }
}

/** One connection's trace. Built at the connection's start (a tenant trace) or on a live session. */
export class ProtocolTrace {
  readonly #log: Logger;
  readonly #includeQueries: boolean;
  readonly #timer: NodeJS.Timeout;
  readonly #fromClient: MessageStream;
  readonly #fromBackend: MessageStream;
  #messages = 0;
  #ended = false;
  #spliced: boolean;
  /** What the client's next `p` is (from the gateway's last Authentication request to it). */
  #clientAnswers: PasswordResponseKind | undefined;
  /** What the gateway's next `p` to the backend is (from the backend's last Authentication request). */
  #gatewayAnswers: PasswordResponseKind | undefined;
  #onEnd: (() => void) | undefined;

  /** What the client's socket shows the trace during authentication and hand-over. */
  readonly client: WireTap = {
    read: (chunk) => this.#fromClient.push(chunk, 0),
    wrote: (bytes) => this.#whole(bytes, TraceDirection.GatewayToClient),
  };

  /** What the backend's socket shows the trace during its startup. */
  readonly backend: WireTap = {
    read: (chunk) => this.#fromBackend.push(chunk, 0),
    wrote: (bytes) => this.#whole(bytes, TraceDirection.GatewayToBackend),
  };

  /**
   * `log` is the connection's logger: its lines carry `conn`, `tenant` and `client`. `spliced`:
   * the session is already spliced, and both streams are picked up at their next message.
   */
  constructor(log: Logger, options: ProtocolTraceOptions, spliced: boolean) {
    // Written whatever the gateway's level: asking for a trace is asking for these lines.
    this.#log = log.child({ protocolTrace: true }, { level: 'debug' });
    this.#includeQueries = options.includeQueries;
    this.#spliced = spliced;
    this.#fromClient = new MessageStream(FRONTEND_TYPES, !spliced, (type, length, body) => this.#onClientMessage(type, length, body));
    // The splice's tracker knows the backend's boundaries: no guessing there.
    this.#fromBackend = new MessageStream(undefined, !spliced, (type, length, body) => this.#onBackendMessage(type, length, body));
    this.#timer = setTimeout(() => this.end('time'), Math.max(0, options.until - Date.now())).unref();
    this.#log.info(
      { until: new Date(options.until).toISOString(), includeQueries: options.includeQueries, spliced },
      'protocol trace started',
    );
  }

  get active(): boolean {
    return !this.#ended;
  }

  /** Called once when the trace ends (the splice then drops it). */
  set onEnd(callback: (() => void) | undefined) {
    this.#onEnd = callback;
  }

  /** The StartupMessage the handshake read, before the trace existed. */
  startup(parameters: ReadonlyMap<string, string>, minorVersion: number): void {
    this.#line(TraceDirection.ClientToGateway, {
      type: 'StartupMessage',
      protocol: `3.${minorVersion}`,
      parameters: describeStartupParameters(parameters),
    });
  }

  /** The StartupMessage the gateway sends the backend (the rewritten parameters). */
  backendStartup(parameters: ReadonlyMap<string, string>, minorVersion: number): void {
    this.#line(TraceDirection.GatewayToBackend, {
      type: 'StartupMessage',
      protocol: `3.${minorVersion}`,
      parameters: describeStartupParameters(parameters),
    });
  }

  /** From now on the client's messages go to the backend and the backend's to the client. */
  spliced(): void {
    this.#spliced = true;
  }

  /** A spliced chunk from the client; `syncOffset` as MessageStream takes it. */
  fromClient(chunk: Buffer, syncOffset: number): void {
    this.#fromClient.push(chunk, syncOffset);
  }

  /** A spliced chunk from the backend; `syncOffset` as MessageStream takes it. */
  fromBackend(chunk: Buffer, syncOffset: number): void {
    this.#fromBackend.push(chunk, syncOffset);
  }

  /** Ends the trace with one line saying why; later calls do nothing. */
  end(reason: string): void {
    if (this.#ended) return;
    this.#ended = true;
    clearTimeout(this.#timer);
    this.#log.info({ reason, messages: this.#messages }, 'protocol trace ended');
    const onEnd = this.#onEnd;
    this.#onEnd = undefined;
    onEnd?.();
  }

  #onClientMessage(type: number, length: number, body: Buffer): void {
    const description = describeFrontendMessage(type, body, {
      includeQueries: this.#includeQueries,
      ...this.#expecting(this.#clientAnswers),
    });
    this.#line(this.#spliced ? TraceDirection.ClientToBackend : TraceDirection.ClientToGateway, { ...description, length });
  }

  #onBackendMessage(type: number, length: number, body: Buffer): void {
    if (type === BackendMessageType.Authentication && body.length >= 4) {
      this.#gatewayAnswers = passwordResponseAfter(body.readInt32BE(0), this.#gatewayAnswers);
    }
    const description = describeBackendMessage(type, body, { includeQueries: this.#includeQueries });
    this.#line(this.#spliced ? TraceDirection.BackendToClient : TraceDirection.BackendToGateway, { ...description, length });
  }

  /** Messages the gateway wrote itself: whole, one after another. */
  #whole(bytes: Buffer, direction: TraceDirection): void {
    const toClient = direction === TraceDirection.GatewayToClient;
    for (let pos = 0; pos + 5 <= bytes.length && !this.#ended;) {
      const type = bytes[pos] as number;
      const length = bytes.readUInt32BE(pos + 1);
      const body = bytes.subarray(pos + 5, pos + 1 + length);
      if (!toClient) {
        const description = describeFrontendMessage(type, body, {
          includeQueries: this.#includeQueries,
          ...this.#expecting(this.#gatewayAnswers),
        });
        this.#line(direction, { ...description, length });
      } else {
        if (type === BackendMessageType.Authentication && body.length >= 4) {
          this.#clientAnswers = passwordResponseAfter(body.readInt32BE(0), this.#clientAnswers);
        }
        this.#line(direction, { ...describeBackendMessage(type, body, { includeQueries: this.#includeQueries }), length });
      }
      pos += 1 + length;
    }
  }

  #expecting(kind: PasswordResponseKind | undefined): { expected?: PasswordResponseKind } {
    return kind === undefined ? {} : { expected: kind };
  }

  #line(direction: TraceDirection, fields: Record<string, unknown>): void {
    if (this.#ended) return;
    this.#log.debug({ dir: direction, ...fields }, 'protocol message');
    if (++this.#messages >= TRACE_MAX_MESSAGES) this.end('message limit');
  }
}

/** A tenant's trace waiting for connections: the next `connections` of them are traced. */
interface TenantTrace {
  remaining: number;
  readonly options: ProtocolTraceOptions;
}

/** The tenant traces of this process, taken one per connection. */
export class TenantTraces {
  readonly #tenants = new Map<string, TenantTrace>();

  /** Traces the next `connections` connections of the tenant until `options.until` (replaces an earlier one). */
  arm(tenantId: string, connections: number, options: ProtocolTraceOptions): void {
    this.#tenants.set(tenantId, { remaining: connections, options });
  }

  /** For a new connection of the tenant: the trace's options when it is to be traced. */
  take(tenantId: string): ProtocolTraceOptions | undefined {
    if (this.#tenants.size === 0) return undefined;
    const trace = this.#tenants.get(tenantId);
    if (trace === undefined) return undefined;
    if (trace.options.until <= Date.now()) {
      this.#tenants.delete(tenantId);
      return undefined;
    }
    if (--trace.remaining <= 0) this.#tenants.delete(tenantId);
    return trace.options;
  }
}
