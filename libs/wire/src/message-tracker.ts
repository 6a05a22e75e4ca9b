// Follows message boundaries on a server→client stream that is spliced as is, without copying
// or framing it: it counts the bytes left of the current message, reads each header (across
// chunk boundaries when it must), and remembers the last ReadyForQuery status. The gateway
// uses it to know when a session is idle at a message boundary (drain) and to catch a stream
// that lost its framing. It allocates nothing per message or per chunk.
// @see https://www.postgresql.org/docs/current/protocol-message-formats.html
import { ProtocolError } from './errors.ts';
import { MAX_MESSAGE_LENGTH } from './frame-decoder.ts';
import { BackendMessageType, TransactionStatus, describeType, transactionStatusOf } from './messages.ts';

export interface MessageTrackerOptions {
  /** Largest declared message length; defaults to {@link MAX_MESSAGE_LENGTH}. */
  maxMessageLength?: number;
}

/** Which part of a message the next byte belongs to. */
const TrackerState = {
  Header: 0,
  Body: 1,
} as const;
type TrackerState = (typeof TrackerState)[keyof typeof TrackerState];

/** 1 for every type byte a server may send; anything else means the framing was lost. */
const KNOWN_BACKEND_TYPES = new Uint8Array(256);
for (const type of Object.values(BackendMessageType)) KNOWN_BACKEND_TYPES[type] = 1;

export class MessageTracker {
  readonly #maxMessageLength: number;
  #state: TrackerState = TrackerState.Header;
  /** Header bytes seen so far when a header crosses chunks (0..4). */
  #headerFilled = 0;
  #type = 0;
  #length = 0;
  /** Body bytes of the current message not seen yet. */
  #remaining = 0;

  #lastType = 0;
  #lastBoundary = -1;
  #messages = 0;
  #status: TransactionStatus | null = null;

  constructor(options: MessageTrackerOptions = {}) {
    const limit = options.maxMessageLength ?? MAX_MESSAGE_LENGTH;
    if (!Number.isInteger(limit) || limit < 4 || limit > 0x7fff_ffff) {
      throw new RangeError(`MessageTracker: bad maxMessageLength ${limit}`);
    }
    this.#maxMessageLength = limit;
  }

  /** True when every byte pushed so far belongs to a whole message. */
  get atBoundary(): boolean {
    return this.#state === TrackerState.Header && this.#headerFilled === 0;
  }

  /** Status of the last ReadyForQuery seen, or null before the first one. */
  get transactionStatus(): TransactionStatus | null {
    return this.#status;
  }

  /** Type byte of the last whole message (0 before the first). */
  get lastMessageType(): number {
    return this.#lastType;
  }

  /** Offset in the last pushed chunk just past its last whole message; -1 if none ended in it. */
  get lastBoundary(): number {
    return this.#lastBoundary;
  }

  /** Whole messages seen so far. */
  get messageCount(): number {
    return this.#messages;
  }

  /**
   * The session waits for a query outside any transaction: the stream ends with a
   * ReadyForQuery of status `I`, so a FATAL may be written to the client now.
   */
  get idle(): boolean {
    return this.atBoundary && this.#lastType === BackendMessageType.ReadyForQuery && this.#status === TransactionStatus.Idle;
  }

  /** Follows `chunk`, which the caller forwards unchanged. Throws ProtocolError on a bad header. */
  push(chunk: Uint8Array): void {
    const end = chunk.length;
    let pos = 0;
    this.#lastBoundary = -1;
    while (pos < end) {
      if (this.#state === TrackerState.Body) pos = this.#skipBody(chunk, pos);
      else if (this.#headerFilled === 0 && end - pos >= 5) pos = this.#wholeMessages(chunk, pos);
      else pos = this.#headerByte(chunk, pos);
    }
  }

  #skipBody(chunk: Uint8Array, pos: number): number {
    const take = Math.min(this.#remaining, chunk.length - pos);
    this.#remaining -= take;
    if (this.#remaining === 0) this.#complete(chunk, pos + take);
    return pos + take;
  }

  /**
   * The hot loop: per message, one header read, one check, and a jump over the body. Stops at
   * the end of the chunk, or at a header that crosses it (read a byte at a time).
   */
  #wholeMessages(chunk: Uint8Array, pos: number): number {
    const end = chunk.length;
    let count = 0;
    while (end - pos >= 5) {
      const type = chunk[pos]!;
      const length = (chunk[pos + 1]! << 24) | (chunk[pos + 2]! << 16) | (chunk[pos + 3]! << 8) | chunk[pos + 4]! | 0;
      this.#check(type, length);
      const next = pos + 1 + length;
      if (next > end) {
        this.#type = type;
        this.#remaining = next - end;
        this.#state = TrackerState.Body;
        pos = end;
        break;
      }
      if (type === BackendMessageType.ReadyForQuery) this.#readStatus(chunk[next - 1]!);
      pos = next;
      count++;
      this.#lastType = type;
      this.#lastBoundary = pos;
    }
    this.#messages += count;
    return pos;
  }

  /** Takes one byte of a header that crosses chunks. */
  #headerByte(chunk: Uint8Array, pos: number): number {
    const byte = chunk[pos]!;
    if (this.#headerFilled === 0) {
      this.#type = byte;
      this.#length = 0;
    } else {
      this.#length = (this.#length << 8) | byte | 0;
    }
    if (++this.#headerFilled === 5) {
      this.#headerFilled = 0;
      this.#begin(chunk, pos + 1);
    }
    return pos + 1;
  }

  /** A header is complete (`pos` is just past it): check it, then skip its body. */
  #begin(chunk: Uint8Array, pos: number): void {
    this.#check(this.#type, this.#length);
    this.#remaining = this.#length - 4;
    if (this.#remaining === 0) this.#complete(chunk, pos);
    else this.#state = TrackerState.Body;
  }

  #check(type: number, length: number): void {
    if (KNOWN_BACKEND_TYPES[type] !== 1) throw new ProtocolError(`unknown server message type ${describeType(type)}`);
    if (length < 4 || length > this.#maxMessageLength) {
      throw new ProtocolError(`invalid server message length ${length} for type ${describeType(type)}`);
    }
    if (type === BackendMessageType.ReadyForQuery && length !== 5) throw new ProtocolError('ReadyForQuery: bad length');
  }

  /** The message ends at `pos`, and its last byte is `chunk[pos - 1]`. */
  #complete(chunk: Uint8Array, pos: number): void {
    this.#state = TrackerState.Header;
    this.#lastType = this.#type;
    this.#lastBoundary = pos;
    this.#messages++;
    if (this.#type === BackendMessageType.ReadyForQuery) this.#readStatus(chunk[pos - 1]!);
  }

  #readStatus(byte: number): void {
    const status = transactionStatusOf(byte);
    if (status === undefined) {
      throw new ProtocolError(`ReadyForQuery: unknown transaction status ${describeType(byte)}`);
    }
    this.#status = status;
  }
}
