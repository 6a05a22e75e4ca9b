// Connections accepted and not yet spliced (docs/architecture.md, step 1): at most a number in
// the process (GATEWAY_MAX_PENDING_CONNECTIONS) and a smaller number from one client address
// (GATEWAY_MAX_PENDING_PER_ADDRESS), counted from accept until the session is spliced or refused,
// so that neither silent sockets nor clients parked in authentication from one address can fill
// the gateway for everyone.

/** A connection's place among the pending ones; release it once, when it is spliced or closed. */
export interface PendingSlot {
  /**
   * Counts the slot against its client's address (known at accept, or from the PROXY header);
   * false, and nothing counted, when that address has its share already.
   */
  bind(address: string): boolean;
  release(): void;
}

export class PendingConnections {
  readonly #max: number;
  readonly #maxPerAddress: number;
  readonly #byAddress = new Map<string, number>();
  #total = 0;

  constructor(max: number, maxPerAddress: number) {
    this.#max = max;
    this.#maxPerAddress = maxPerAddress;
  }

  get size(): number {
    return this.#total;
  }

  /** Connections pending from `address`. */
  fromAddress(address: string): number {
    return this.#byAddress.get(address) ?? 0;
  }

  /** A slot, or undefined when the process has its maximum pending already. */
  enter(): PendingSlot | undefined {
    if (this.#total >= this.#max) return undefined;
    this.#total++;
    let address: string | undefined;
    let released = false;
    return {
      bind: (client) => {
        if (released || address !== undefined) return address === client;
        const count = this.#byAddress.get(client) ?? 0;
        if (count >= this.#maxPerAddress) return false;
        this.#byAddress.set(client, count + 1);
        address = client;
        return true;
      },
      release: () => {
        if (released) return;
        released = true;
        this.#total--;
        if (address === undefined) return;
        const left = (this.#byAddress.get(address) ?? 1) - 1;
        if (left === 0) this.#byAddress.delete(address);
        else this.#byAddress.set(address, left);
      },
    };
  }
}
