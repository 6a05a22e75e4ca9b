// Incremental framing of a Postgres byte stream into whole packets.
//
// Usage on a hot path, with no closure per message:
//
//   socket.on('data', (chunk) => {
//     decoder.push(chunk);
//     for (let frame = decoder.next(); frame !== null; frame = decoder.next()) handle(frame);
//   });
//
// A frame that lies wholly inside one chunk is a `subarray` view of that chunk: no copy. Only a
// frame that crosses chunks is copied, into a buffer allocated for that frame alone once its
// declared length has been checked. The decoder never writes into a buffer it has handed out,
// so a frame stays valid for as long as the caller holds it (it may go to `socket.write()`
// as is) and the caller must not modify pushed chunks afterwards.
// @see https://www.postgresql.org/docs/current/protocol-overview.html#PROTOCOL-MESSAGE-CONCEPTS
import { ProtocolError } from './errors.ts';

export const FramePhase = {
  /** Untyped packets: Int32 length (counting itself), then the body. */
  Startup: 'startup',
  /** Typed messages: Byte1 type, Int32 length (counting itself, not the type), then the body. */
  Normal: 'normal',
} as const;
export type FramePhase = (typeof FramePhase)[keyof typeof FramePhase];

/** PostgreSQL's MAX_STARTUP_PACKET_LENGTH. */
export const MAX_STARTUP_PACKET_LENGTH = 10_000;
/** The shortest startup packet: its length and a request code or protocol version. */
export const MIN_STARTUP_PACKET_LENGTH = 8;
/** PostgreSQL's PG_MAX_AUTH_TOKEN_LENGTH: the largest message a client may send before it is authenticated. */
export const MAX_AUTH_MESSAGE_LENGTH = 65_535;
/** PostgreSQL's MaxAllocSize (1 GiB - 1): no message on either leg can be longer. */
export const MAX_MESSAGE_LENGTH = 0x3fff_ffff;

export interface FrameDecoderOptions {
  /** Defaults to `normal`; a decoder for a client's first bytes starts in `startup`. */
  phase?: FramePhase;
  /** Largest declared startup packet length; defaults to {@link MAX_STARTUP_PACKET_LENGTH}. */
  maxStartupLength?: number;
  /**
   * Largest declared message length (the Int32, which counts itself but not the type byte);
   * defaults to {@link MAX_MESSAGE_LENGTH}. Use {@link MAX_AUTH_MESSAGE_LENGTH} for a client
   * that has not authenticated yet.
   */
  maxMessageLength?: number;
}

const EMPTY = Buffer.alloc(0);
const HEADER_SIZE: Readonly<Record<FramePhase, number>> = { startup: 4, normal: 5 };
/** Frames up to this size are allocated whole when they start; larger ones grow as bytes arrive. */
const EAGER_ALLOCATION = 256 * 1024;

export class FrameDecoder {
  #phase: FramePhase;
  #maxStartupLength: number;
  #maxMessageLength: number;

  /** The chunk being read, from `#offset` on; frames inside it are views of it. */
  #chunk: Buffer = EMPTY;
  #offset = 0;

  /** Header bytes of a frame that crosses chunks, while fewer than a whole header arrived. */
  readonly #header = Buffer.alloc(5);
  #headerFilled = 0;

  /** A frame that crosses chunks, once its header is known: `#frameLength` bytes in all. */
  #partial: Buffer = EMPTY;
  #partialFilled = 0;
  #frameLength = 0;

  constructor(options: FrameDecoderOptions = {}) {
    this.#phase = options.phase ?? FramePhase.Normal;
    const maxStartupLength = options.maxStartupLength ?? MAX_STARTUP_PACKET_LENGTH;
    this.#maxStartupLength = checkLimit(maxStartupLength, MIN_STARTUP_PACKET_LENGTH);
    this.#maxMessageLength = checkLimit(options.maxMessageLength ?? MAX_MESSAGE_LENGTH, 4);
  }

  get phase(): FramePhase {
    return this.#phase;
  }

  /**
   * Switches the framing, e.g. to `normal` once the StartupMessage was taken. Only between
   * frames: bytes already pushed but not yet framed are read with the new framing.
   */
  setPhase(phase: FramePhase): void {
    if (this.#assembling()) throw new Error('FrameDecoder: the phase can only change between frames');
    this.#phase = phase;
  }

  get maxMessageLength(): number {
    return this.#maxMessageLength;
  }

  /** Changes the limit for messages not yet started, e.g. raised once the client authenticated. */
  setMaxMessageLength(limit: number): void {
    this.#maxMessageLength = checkLimit(limit, 4);
  }

  /** Bytes pushed but not yet returned as frames. */
  get bufferedBytes(): number {
    const assembled = this.#frameLength > 0 ? this.#partialFilled : this.#headerFilled;
    return assembled + this.#chunk.length - this.#offset;
  }

  /** Size of the buffer this decoder owns for a frame that crosses chunks (0 when none). */
  get ownedBytes(): number {
    return this.#partial.length;
  }

  /**
   * Adds bytes read from the peer. Call {@link next} until it returns null before the next
   * push; bytes left unread are kept in order, at the cost of a copy.
   */
  push(chunk: Buffer): void {
    if (chunk.length === 0) return;
    if (this.#offset < this.#chunk.length) {
      this.#chunk = Buffer.concat([this.#chunk.subarray(this.#offset), chunk]);
    } else {
      this.#chunk = chunk;
    }
    this.#offset = 0;
  }

  /**
   * The next whole frame (header included: `frame[0]` is the type in the normal phase), or
   * null when more bytes are needed. Throws ProtocolError on a bad declared length; the
   * stream cannot be resynchronized after that.
   */
  next(): Buffer | null {
    if (this.#assembling()) return this.#continueAcrossChunks();
    const available = this.#chunk.length - this.#offset;
    if (available === 0) return null;
    if (available < HEADER_SIZE[this.#phase]) return this.#startHeader();
    const length = this.#frameLengthAt(this.#chunk, this.#offset);
    if (available < length) return this.#startPartial(length);
    const frame = this.#chunk.subarray(this.#offset, this.#offset + length);
    this.#offset += length;
    if (this.#offset === this.#chunk.length) this.#releaseChunk();
    return frame;
  }

  /**
   * Hands over every byte pushed but not returned as a frame (e.g. to splice them on as they
   * are) and empties the decoder.
   */
  takeBuffered(): Buffer {
    const assembled = this.#frameLength > 0 ? this.#partial.subarray(0, this.#partialFilled) : this.#header.subarray(0, this.#headerFilled);
    const rest = this.#chunk.subarray(this.#offset);
    const taken = assembled.length === 0 ? rest : Buffer.concat([assembled, rest]);
    this.#resetPartial();
    this.#releaseChunk();
    return taken;
  }

  #assembling(): boolean {
    return this.#headerFilled > 0 || this.#frameLength > 0;
  }

  /** Validates a header at `at` and returns the whole frame size. */
  #frameLengthAt(buf: Buffer, at: number): number {
    if (this.#phase === FramePhase.Startup) {
      const length = buf.readInt32BE(at);
      if (length < MIN_STARTUP_PACKET_LENGTH || length > this.#maxStartupLength) {
        throw new ProtocolError(`invalid length of startup packet (${length})`);
      }
      return length;
    }
    const length = buf.readInt32BE(at + 1);
    if (length < 4 || length > this.#maxMessageLength) {
      throw new ProtocolError(`invalid message length ${length} (allowed 4..${this.#maxMessageLength})`);
    }
    return length + 1;
  }

  /** The chunk ends inside a header: keep those few bytes until the rest arrives. */
  #startHeader(): null {
    this.#headerFilled = this.#chunk.copy(this.#header, 0, this.#offset);
    this.#releaseChunk();
    return null;
  }

  /** The chunk ends inside a frame whose length is known and valid: copy what there is. */
  #startPartial(length: number): null {
    this.#allocatePartial(length, this.#chunk.length - this.#offset);
    this.#partialFilled = this.#chunk.copy(this.#partial, 0, this.#offset);
    this.#releaseChunk();
    return null;
  }

  #continueAcrossChunks(): Buffer | null {
    if (this.#frameLength === 0 && !this.#completeHeader()) return null;
    const wanted = this.#frameLength - this.#partialFilled;
    const take = Math.min(wanted, this.#chunk.length - this.#offset);
    if (this.#partialFilled + take > this.#partial.length) this.#growPartial(this.#partialFilled + take);
    this.#chunk.copy(this.#partial, this.#partialFilled, this.#offset, this.#offset + take);
    this.#partialFilled += take;
    this.#offset += take;
    if (this.#offset === this.#chunk.length) this.#releaseChunk();
    if (this.#partialFilled < this.#frameLength) return null;
    const frame = this.#partial.subarray(0, this.#frameLength);
    this.#resetPartial();
    return frame;
  }

  /** Tops up the header from the chunk; once whole, checks it before any body is kept. */
  #completeHeader(): boolean {
    const size = HEADER_SIZE[this.#phase];
    const take = Math.min(size - this.#headerFilled, this.#chunk.length - this.#offset);
    this.#chunk.copy(this.#header, this.#headerFilled, this.#offset, this.#offset + take);
    this.#headerFilled += take;
    this.#offset += take;
    if (this.#offset === this.#chunk.length) this.#releaseChunk();
    if (this.#headerFilled < size) return false;
    const length = this.#frameLengthAt(this.#header, 0);
    this.#allocatePartial(length, size);
    this.#header.copy(this.#partial, 0, 0, size);
    this.#partialFilled = size;
    this.#headerFilled = 0;
    return true;
  }

  /**
   * A fresh buffer per crossing frame (frames handed out are never overwritten). Large
   * declared lengths get memory as bytes arrive, not on the peer's word alone.
   */
  #allocatePartial(length: number, have: number): void {
    this.#frameLength = length;
    const size = length <= EAGER_ALLOCATION ? length : Math.min(length, Math.max(EAGER_ALLOCATION, have * 2));
    this.#partial = Buffer.allocUnsafe(size);
  }

  #growPartial(needed: number): void {
    const grown = Buffer.allocUnsafe(Math.min(this.#frameLength, Math.max(needed, this.#partial.length * 2)));
    this.#partial.copy(grown, 0, 0, this.#partialFilled);
    this.#partial = grown;
  }

  /** Drops the reference so a giant frame's memory goes once the caller lets go of it. */
  #resetPartial(): void {
    this.#partial = EMPTY;
    this.#partialFilled = 0;
    this.#frameLength = 0;
    this.#headerFilled = 0;
  }

  #releaseChunk(): void {
    this.#chunk = EMPTY;
    this.#offset = 0;
  }
}

function checkLimit(limit: number, min: number): number {
  if (!Number.isInteger(limit) || limit < min || limit > 0x7fff_ffff) {
    throw new RangeError(`FrameDecoder: limit must be an integer in ${min}..${0x7fff_ffff}, got ${limit}`);
  }
  return limit;
}
