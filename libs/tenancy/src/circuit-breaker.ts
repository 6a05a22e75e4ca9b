// A circuit breaker for the control plane (docs/architecture.md, step 6). After `failures`
// requests in a row have failed, the breaker opens: for `openMs` no request goes out, so a hung
// or dead control plane costs each lookup nothing instead of a timeout and its retries. Then one
// probe may go (half-open): its success closes the breaker, its failure opens it again.

export const BreakerState = { Closed: 'closed', Open: 'open', HalfOpen: 'half_open' } as const;
export type BreakerState = (typeof BreakerState)[keyof typeof BreakerState];

export interface CircuitBreakerOptions {
  /** Failures in a row that open the breaker. */
  readonly failures: number;
  /** How long it stays open before one probe may go. */
  readonly openMs: number;
  /** Monotonic milliseconds. */
  readonly now: () => number;
}

export class CircuitBreaker {
  readonly #options: CircuitBreakerOptions;
  #failuresInRow = 0;
  #openUntil = 0;
  #probing = false;

  constructor(options: CircuitBreakerOptions) {
    this.#options = options;
  }

  get state(): BreakerState {
    if (this.#failuresInRow < this.#options.failures) return BreakerState.Closed;
    return this.#options.now() < this.#openUntil ? BreakerState.Open : BreakerState.HalfOpen;
  }

  /** Whether a request may go out now; in half-open state, only one at a time (the probe). */
  allow(): boolean {
    switch (this.state) {
      case BreakerState.Closed:
        return true;
      case BreakerState.Open:
        return false;
      default:
        if (this.#probing) return false;
        this.#probing = true;
        return true;
    }
  }

  success(): void {
    this.#failuresInRow = 0;
    this.#probing = false;
  }

  failure(): void {
    this.#failuresInRow++;
    this.#probing = false;
    if (this.#failuresInRow >= this.#options.failures) this.#openUntil = this.#options.now() + this.#options.openMs;
  }
}
