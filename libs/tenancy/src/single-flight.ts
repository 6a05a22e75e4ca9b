// One in-flight piece of work per key: concurrent callers for the same key share it. A caller's
// AbortSignal ends only that caller's wait; the work runs on for the others, under the group's
// own signal (aborted by abortAll, at close). A flight can be superseded (its key was
// invalidated while it ran): it still answers the callers that joined it, but new callers start
// a fresh flight, and the work can see that it must not cache what it found.

/** What the work of a flight sees of it. */
export interface Flight {
  /** Aborted by abortAll(); never by a caller. */
  readonly signal: AbortSignal;
  /** True once supersede() or supersedeAll() has detached this flight from its key. */
  readonly superseded: boolean;
}

interface FlightRecord<V> {
  readonly flight: { readonly signal: AbortSignal; superseded: boolean };
  readonly promise: Promise<V>;
}

export class SingleFlight<V> {
  readonly #flights = new Map<string, FlightRecord<V>>();
  readonly #controller = new AbortController();

  /** Joins the flight for `key`, or starts one with `work`. */
  run(key: string, work: (flight: Flight) => Promise<V>, signal?: AbortSignal): Promise<V> {
    if (signal?.aborted) return Promise.reject(signal.reason);
    const record = this.#flights.get(key) ?? this.#start(key, work);
    return signal === undefined ? record.promise : waitOrAbort(record.promise, signal);
  }

  #start(key: string, work: (flight: Flight) => Promise<V>): FlightRecord<V> {
    const flight = { signal: this.#controller.signal, superseded: false };
    const record: FlightRecord<V> = { flight, promise: (async () => work(flight))() };
    const settle = () => {
      if (this.#flights.get(key) === record) this.#flights.delete(key);
    };
    // Also marks the rejection as handled: when every caller has given up waiting, nobody else
    // awaits it. The work reports its own failures; callers that wait still get them.
    record.promise.then(settle, settle);
    this.#flights.set(key, record);
    return record;
  }

  /** The current flight for `key` answers its callers but caches nothing; new callers start anew. */
  supersede(key: string): void {
    const record = this.#flights.get(key);
    if (record === undefined) return;
    record.flight.superseded = true;
    this.#flights.delete(key);
  }

  supersedeAll(): void {
    for (const record of this.#flights.values()) record.flight.superseded = true;
    this.#flights.clear();
  }

  /** Aborts the signal every flight's work runs under (and will run under). */
  abortAll(reason: unknown): void {
    this.#controller.abort(reason);
  }

  /** Flights in progress for distinct keys. */
  get size(): number {
    return this.#flights.size;
  }
}

/** `promise`, or the signal's reason if it aborts first. The listener never outlives the wait. */
export function waitOrAbort<T>(promise: Promise<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) return Promise.reject(signal.reason);
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(signal.reason);
    signal.addEventListener('abort', onAbort, { once: true });
    promise.then(
      (value) => {
        signal.removeEventListener('abort', onAbort);
        resolve(value);
      },
      (error: unknown) => {
        signal.removeEventListener('abort', onAbort);
        reject(error);
      },
    );
  });
}
