// What the edge hands a session: one client that named its tenant, and the connection it came
// on. The edge's handshake result (edge/handshake.ts ClientStartup) carries more; a session
// needs only this.
// Map: docs/architecture.md, step 5.
import type { Socket } from 'node:net';
import type { PendingSlot } from '../limits/index.ts';
import type { Logger } from '../telemetry/index.ts';

/** A client that sent a StartupMessage and named a tenant. */
export interface SessionClient {
  /**
   * A TLSSocket when the client upgraded. Paused, with no listener of the edge's left; bytes the
   * client sent after its StartupMessage are pushed back into it, unread.
   */
  readonly socket: Socket;
  readonly tenantId: string;
  readonly startup: {
    /** The negotiated minor version of protocol 3: the client's, at most LATEST_MINOR_VERSION. */
    readonly minorVersion: number;
    /** In the order sent; the tenant setting removed from `options`; no `_pq_.*` options. */
    readonly parameters: Map<string, string>;
  };
  /** The certificate the client was shown; its tls-server-end-point binds SCRAM-SHA-256-PLUS. */
  readonly serverCertificate: { readonly tlsServerEndPoint: Buffer | undefined } | undefined;
  readonly clientAddress: string;
  /** The client's port (the PROXY header's source port when there is one). */
  readonly clientPort: number;
}

/** One accepted connection, from accept to close. */
export interface Connection {
  /** Unique within the process; the `conn` of every log line about it. */
  readonly id: number;
  /** Carries `conn`, `client` (the PROXY header's source when there is one), and `tenant` once known. */
  readonly log: Logger;
  /** `process.hrtime.bigint()` at accept: the start of the `total` phase. */
  readonly acceptedAt: bigint;
  /** Its place among the connections not yet spliced: the session releases it once spliced or refused. */
  readonly pending: PendingSlot;
}
