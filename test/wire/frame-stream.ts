// Whole frames read from a socket, one `await` at a time: the reading half of the test clients.
// Built on FrameDecoder, so the library frames every byte these tests look at.
import type { Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';
import { FrameDecoder, FramePhase } from '@tenantgate/wire';

/** The peer closed the connection (or it failed) while a frame was awaited. */
export class ConnectionClosedError extends Error {
  readonly code = 'TG_TEST_CONNECTION_CLOSED';
}

/** A server that stops answering fails the test in seconds, not at the runner's timeout. */
const FRAME_TIMEOUT_MS = 5_000;

export class FrameStream {
  readonly #decoder: FrameDecoder;
  readonly #frames: Buffer[] = [];
  #waiter: { resolve: (frame: Buffer) => void; reject: (error: Error) => void } | undefined;
  #failure: Error | undefined;

  constructor(socket: Socket | TLSSocket, phase: FramePhase = FramePhase.Normal) {
    this.#decoder = new FrameDecoder({ phase });
    socket.on('data', (chunk: Buffer) => this.#receive(chunk));
    socket.on('error', (error) => this.#fail(error));
    socket.on('close', () => this.#fail(new ConnectionClosedError('the server closed the connection')));
  }

  /** The next whole frame; rejects with ConnectionClosedError once the peer is gone and nothing is left. */
  next(): Promise<Buffer> {
    const frame = this.#frames.shift();
    if (frame !== undefined) return Promise.resolve(frame);
    if (this.#failure !== undefined) return Promise.reject(this.#failure);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#waiter = undefined;
        reject(new Error(`no message from the server in ${FRAME_TIMEOUT_MS} ms`));
      }, FRAME_TIMEOUT_MS);
      const settle = () => clearTimeout(timer);
      this.#waiter = {
        resolve: (frame) => (settle(), resolve(frame)),
        reject: (error) => (settle(), reject(error)),
      };
    });
  }

  #receive(chunk: Buffer): void {
    try {
      this.#decoder.push(chunk);
      for (let frame = this.#decoder.next(); frame !== null; frame = this.#decoder.next()) this.#deliver(frame);
    } catch (error) {
      this.#fail(error as Error);
    }
  }

  #deliver(frame: Buffer): void {
    const waiter = this.#waiter;
    this.#waiter = undefined;
    if (waiter === undefined) this.#frames.push(frame);
    else waiter.resolve(frame);
  }

  #fail(error: Error): void {
    this.#failure ??= error;
    const waiter = this.#waiter;
    this.#waiter = undefined;
    waiter?.reject(this.#failure);
  }
}
