// The client-facing front half of a connection: first bytes → TLS → StartupMessage → tenant id.
// One explicit state drives it; packets are dispatched on it in one place (#onPacket). What
// PostgreSQL does is the reference for every reply, including when it says nothing at all.
// @see https://www.postgresql.org/docs/current/protocol-flow.html#PROTOCOL-FLOW-START-UP
// @see PostgreSQL src/backend/tcop/backend_startup.c (ProcessSSLStartup, ProcessStartupPacket)
// Map: docs/architecture.md, step 2.
import type { Socket } from 'node:net';
import { TLSSocket, type TLSSocketOptions } from 'node:tls';
import {
  FrameDecoder,
  FramePhase,
  LATEST_MINOR_VERSION,
  PROTOCOL_MAJOR_VERSION,
  ProtocolError,
  StartupRequestCode,
  parseStartupPacket,
  replicationRequest,
  serializeNegotiateProtocolVersion,
  type CancelRequest,
  type StartupMessage,
  type StartupPacket,
  SqlState,
} from '@tenantgate/wire';
import { ConnectionOutcome, Phase, type GatewayMetrics } from '../telemetry/index.ts';
import { closeGracefully, sendRefusal } from '../refusal.ts';
import { normalizeServerName } from './server-name.ts';
import { clientAddressOf } from './proxy-protocol.ts';
import type { TenantIdentifier, TenantIdOrigin } from './tenant-id.ts';
import type { CertificateTable, ServerCertificate, TlsContexts } from './tls-contexts.ts';
import { Refusal, HandshakeError } from '../errors.ts';
import type { ClientCancel } from '../cancel/index.ts';
import type { SessionClient } from '../session/index.ts';

export const HandshakeState = {
  /** Reading startup-phase packets in plaintext: SSLRequest, GSSENCRequest, CancelRequest, StartupMessage. */
  Plain: 'plain',
  /** The TLS handshake runs (after 'S', or on a ClientHello sent first: direct TLS). */
  TlsHandshake: 'tls_handshake',
  /** Reading startup-phase packets inside TLS: CancelRequest or StartupMessage. */
  Secure: 'secure',
  /** Settled: handed over, refused, or closed. */
  Done: 'done',
} as const;
export type HandshakeState = (typeof HandshakeState)[keyof typeof HandshakeState];

export interface HandshakeOptions {
  /** Undefined: no TLS (SSLRequest gets 'N'); only valid with allowPlaintext. */
  readonly contexts: TlsContexts | undefined;
  readonly tenants: TenantIdentifier;
  readonly allowPlaintext: boolean;
  /** From accept until the StartupMessage has been read (GatewayConfig.handshakeTimeoutMs). */
  readonly timeoutMs: number;
  readonly metrics?: Pick<GatewayMetrics, 'refusals' | 'phaseDuration'>;
  /** How long a refused client may take to close its side; REFUSAL_GRACE_MS when absent. */
  readonly refusalGraceMs?: number;
}

/** A client that sent a StartupMessage and named a tenant: what the edge knows of it. */
export interface ClientStartup extends SessionClient {
  readonly kind: 'startup';
  readonly tls: boolean;
  /** TLS began with the ClientHello (PostgreSQL 17 `sslnegotiation=direct`), not an SSLRequest. */
  readonly directTls: boolean;
  /** The SNI name, lower case; undefined without SNI. */
  readonly serverName: string | undefined;
  readonly tenantIdOrigin: TenantIdOrigin;
  readonly serverCertificate: ServerCertificate | undefined;
  readonly clientPort: number;
}

export type HandshakeResult = ClientStartup | ClientCancel;

/** The first byte of a TLS record of type handshake: a ClientHello where a length should be. */
const TLS_HANDSHAKE_RECORD = 0x16;
/** IANA-registered ALPN id; PostgreSQL 17 requires it on direct TLS and refuses any other. */
export const ALPN_PROTOCOL = 'postgresql';
/**
 * The same list in wire format (length, name), as a DataView: from a string list or a Buffer, Node
 * copies it into a slice of its shared 64 KiB Buffer pool for every socket, and a slice that lives
 * as long as the session keeps the whole pool alive; from a DataView it copies to a buffer of its own.
 */
const ALPN_PROTOCOLS = new DataView(Uint8Array.from([ALPN_PROTOCOL.length, ...Buffer.from(ALPN_PROTOCOL, 'latin1')]).buffer);
const ANSWER_SSL_YES = Buffer.from('S');
const ANSWER_NO = Buffer.from('N');
/** The wire library's words for a StartupMessage without `user` (PostgreSQL: 28000, not 08P01). */
export const NO_USER_MESSAGE = 'no PostgreSQL user name specified in startup packet';

/**
 * Runs the handshake on a freshly accepted socket. Resolves with the client's startup or
 * cancel request; rejects with a HandshakeError after the client was refused or closed.
 */
export function performHandshake(socket: Socket, options: HandshakeOptions): Promise<HandshakeResult> {
  return new Promise((resolve, reject) => {
    new ClientHandshake(socket, options, resolve, reject).start();
  });
}

class ClientHandshake {
  readonly #raw: Socket;
  readonly #options: HandshakeOptions;
  readonly #resolve: (result: HandshakeResult) => void;
  readonly #reject: (error: HandshakeError) => void;
  readonly #clientAddress: string;
  readonly #clientPort: number;

  #state: HandshakeState = HandshakeState.Plain;
  /** The socket packets come from: the raw one, then the TLSSocket over it. */
  #socket: Socket;
  #decoder = new FrameDecoder({ phase: FramePhase.Startup });
  #firstBytes = true;
  #sslRefused = false;
  #gssRefused = false;
  #directTls = false;
  /**
   * The certificate the client was shown: set by the SNI callback, which the TLSSocket keeps for
   * the whole session, so it holds this small object rather than the handshake.
   */
  #shown: { certificate: ServerCertificate | undefined } = { certificate: undefined };
  #stopTlsTimer: (() => number) | undefined;
  #timer: NodeJS.Timeout | undefined;

  constructor(socket: Socket, options: HandshakeOptions, resolve: (r: HandshakeResult) => void, reject: (e: HandshakeError) => void) {
    this.#raw = socket;
    this.#socket = socket;
    this.#options = options;
    this.#resolve = resolve;
    this.#reject = reject;
    // One client, one text: cancel rate limits and logs must not see `::ffff:10.0.0.1` and `10.0.0.1` apart.
    this.#clientAddress = clientAddressOf(socket.remoteAddress ?? '');
    this.#clientPort = socket.remotePort ?? 0;
  }

  start(): void {
    // Without TCP_NODELAY each small handshake write waits for the peer's delayed ACK (~40 ms).
    this.#raw.setNoDelay(true);
    this.#raw.setKeepAlive(true, KEEPALIVE_INITIAL_DELAY_MS);
    this.#timer = setTimeout(this.#onTimeout, this.#options.timeoutMs);
    this.#timer.unref();
    this.#listen(this.#raw);
    this.#raw.on('data', this.#onData);
    if (this.#raw.destroyed) this.#abort(ConnectionOutcome.ClientClosed, 'the client closed the connection before the handshake');
  }

  #listen(socket: Socket): void {
    socket.on('error', this.#onError);
    socket.on('close', this.#onClose);
  }

  #unlisten(socket: Socket): void {
    socket.off('data', this.#onData);
    socket.off('error', this.#onError);
    socket.off('close', this.#onClose);
  }

  readonly #onData = (chunk: Buffer): void => {
    try {
      if (this.#firstBytes) {
        this.#firstBytes = false;
        // Only the very first byte may open direct TLS, as in PostgreSQL (ProcessSSLStartup).
        if (chunk[0] === TLS_HANDSHAKE_RECORD) return this.#startDirectTls(chunk);
      }
      this.#decoder.push(chunk);
      this.#readPackets();
    } catch (error) {
      // A fault of ours must cost one connection, never the process.
      this.#abort(ConnectionOutcome.Error, 'internal error during the handshake', error);
    }
  };

  #readPackets(): void {
    const reading = this.#state;
    while (this.#state === reading) {
      let frame: Buffer | null;
      try {
        frame = this.#decoder.next();
      } catch (error) {
        // A length outside 8..10000: PostgreSQL logs it and closes without a word (COMMERROR).
        return this.#abort(ConnectionOutcome.Refused, (error as Error).message, error);
      }
      if (frame === null) return;
      this.#onPacket(frame);
    }
  }

  /** The one place that decides what a packet means in the current state. */
  #onPacket(frame: Buffer): void {
    const packet = this.#parse(frame);
    if (packet === undefined) return;
    switch (this.#state) {
      case HandshakeState.Plain:
        return this.#onPlainPacket(packet);
      case HandshakeState.Secure:
        return this.#onSecurePacket(packet);
      case HandshakeState.TlsHandshake:
      case HandshakeState.Done:
        // No packet is read in these states: TLS owns the bytes, or nothing is read any more.
        return;
    }
  }

  #onPlainPacket(packet: StartupPacket): void {
    switch (packet.kind) {
      case 'SSLRequest':
        return this.#onSslRequest();
      case 'GSSENCRequest':
        return this.#onGssEncRequest();
      case 'CancelRequest':
        return this.#finishCancel(packet);
      case 'StartupMessage':
        if (!this.#options.allowPlaintext) return this.#refuse(tlsRequired());
        return this.#finishStartup(packet);
    }
  }

  #onSecurePacket(packet: StartupPacket): void {
    switch (packet.kind) {
      case 'SSLRequest':
      case 'GSSENCRequest':
        return this.#refuse(new Refusal(SqlState.ProtocolViolation, `unexpected ${packet.kind} inside TLS`));
      case 'CancelRequest':
        return this.#finishCancel(packet);
      case 'StartupMessage':
        return this.#finishStartup(packet);
    }
  }

  /**
   * 'S' and TLS, or 'N' when no certificate is configured. Bytes already sent after the
   * SSLRequest were sent before TLS, so anyone on the path may have written them
   * (CVE-2021-23214; CVE-2021-23222 is libpq's side): they are refused without answering 'S'.
   */
  #onSslRequest(): void {
    if (this.#sslRefused) return this.#refuse(new Refusal(SqlState.ProtocolViolation, 'SSLRequest sent twice'));
    if (this.#decoder.bufferedBytes > 0) return this.#refuse(unencryptedData('SSL request'));
    if (this.#options.contexts === undefined) {
      this.#sslRefused = true;
      this.#raw.write(ANSWER_NO);
      return;
    }
    this.#raw.write(ANSWER_SSL_YES);
    this.#startTls(undefined);
  }

  /** GSSAPI encryption is not offered: 'N', and libpq goes on with an SSLRequest. */
  #onGssEncRequest(): void {
    if (this.#gssRefused) return this.#refuse(new Refusal(SqlState.ProtocolViolation, 'GSSENCRequest sent twice'));
    if (this.#decoder.bufferedBytes > 0) return this.#refuse(unencryptedData('GSSAPI encryption request'));
    this.#gssRefused = true;
    this.#raw.write(ANSWER_NO);
  }

  #startDirectTls(chunk: Buffer): void {
    // PostgreSQL without SSL rejects a direct ClientHello by closing.
    if (this.#options.contexts === undefined) return this.#abort(ConnectionOutcome.Refused, 'direct TLS, but TLS is not configured');
    this.#directTls = true;
    this.#startTls(chunk);
  }

  /**
   * Hands the raw socket to a TLSSocket. Bytes read ahead (a direct ClientHello) go back into
   * the raw socket first; the TLSSocket feeds what the raw socket holds to the handshake.
   */
  #startTls(readAhead: Buffer | undefined): void {
    this.#state = HandshakeState.TlsHandshake;
    this.#raw.off('data', this.#onData);
    this.#raw.pause();
    if (readAhead !== undefined) this.#raw.unshift(readAhead);
    const table = this.#options.contexts!.current;
    const shown = { certificate: table.fallback };
    this.#shown = shown;
    const tlsSocket = new TLSSocket(this.#raw, {
      isServer: true,
      // Asked of every client, required of none: a tenant in a certificate mode checks it
      // against its own CA (session/client-certificate.ts); the others never look at it.
      requestCert: true,
      rejectUnauthorized: false,
      secureContext: table.fallback.context,
      SNICallback: sniCallback(shown, table),
      ALPNProtocols: ALPN_PROTOCOLS,
    });
    this.#socket = tlsSocket;
    this.#listen(tlsSocket);
    tlsSocket.once('secure', () => this.#onSecure(tlsSocket));
    this.#stopTlsTimer = this.#options.metrics?.phaseDuration.startTimer({ phase: Phase.Tls });
  }

  #onSecure(tlsSocket: TLSSocket): void {
    if (this.#state !== HandshakeState.TlsHandshake) return;
    this.#stopTlsTimer?.();
    // PostgreSQL 17 closes a direct TLS connection without ALPN (a mismatch never gets here:
    // OpenSSL has already sent the no_application_protocol alert).
    if (this.#directTls && tlsSocket.alpnProtocol !== ALPN_PROTOCOL) {
      return this.#abort(ConnectionOutcome.Refused, 'direct TLS without ALPN "postgresql"');
    }
    this.#state = HandshakeState.Secure;
    this.#decoder = new FrameDecoder({ phase: FramePhase.Startup });
    tlsSocket.on('data', this.#onData);
  }

  /** A packet, or undefined after refusing or closing as PostgreSQL would for its fault. */
  #parse(frame: Buffer): StartupPacket | undefined {
    try {
      return parseStartupPacket(frame);
    } catch (error) {
      if (!(error instanceof ProtocolError)) throw error;
      const refusal = malformedPacketRefusal(frame, error);
      if (refusal === undefined) this.#abort(ConnectionOutcome.Refused, error.message, error);
      else this.#refuse(refusal);
      return undefined;
    }
  }

  #finishCancel(packet: CancelRequest): void {
    this.#settle();
    const { processId, secretKey } = packet;
    this.#resolve({ kind: 'cancel', processId, secretKey, tls: this.#socket !== this.#raw, ...this.#client() });
    closeGracefully(this.#socket, undefined, this.#options.refusalGraceMs);
  }

  #finishStartup(packet: StartupMessage): void {
    const minorVersion = Math.min(packet.minorVersion, LATEST_MINOR_VERSION);
    if (packet.minorVersion > LATEST_MINOR_VERSION || packet.protocolOptions.size > 0) {
      // The wire library writes the whole version (3.minor), as PostgreSQL does and libpq 18 expects.
      this.#socket.write(serializeNegotiateProtocolVersion(minorVersion, [...packet.protocolOptions.keys()]));
    }
    const serverName = normalizeServerName(this.#socket instanceof TLSSocket ? this.#socket.servername : undefined);
    try {
      checkReplicationValue(packet.parameters);
      const identity = this.#options.tenants.identify(serverName, packet.parameters);
      const startup = { minorVersion, parameters: identity.parameters };
      this.#handOver({ serverName, tenantId: identity.tenantId, tenantIdOrigin: identity.origin, startup });
    } catch (error) {
      if (!(error instanceof Refusal)) throw error;
      this.#refuse(error);
    }
  }

  #handOver(found: Pick<ClientStartup, 'serverName' | 'tenantId' | 'tenantIdOrigin' | 'startup'>): void {
    this.#settle();
    const socket = this.#socket;
    this.#unlisten(socket);
    this.#unlisten(this.#raw);
    socket.pause();
    const readAhead = this.#decoder.takeBuffered();
    if (readAhead.length > 0) socket.unshift(readAhead);
    const tls = socket !== this.#raw;
    this.#resolve({
      kind: 'startup',
      socket,
      tls,
      directTls: this.#directTls,
      ...found,
      serverCertificate: tls ? this.#shown.certificate : undefined,
      ...this.#client(),
    });
  }

  #client(): { clientAddress: string; clientPort: number } {
    return { clientAddress: this.#clientAddress, clientPort: this.#clientPort };
  }

  /** Leaves every state for Done; true when this call did it. */
  #settle(): boolean {
    if (this.#state === HandshakeState.Done) return false;
    this.#state = HandshakeState.Done;
    clearTimeout(this.#timer);
    this.#socket.off('data', this.#onData);
    return true;
  }

  #refuse(refusal: Refusal, outcome: ConnectionOutcome = ConnectionOutcome.Refused): void {
    if (!this.#settle()) return;
    sendRefusal(this.#socket, refusal, { metrics: this.#options.metrics, graceMs: this.#options.refusalGraceMs });
    this.#reject(new HandshakeError(outcome, refusal.message, { refusal, cause: refusal }));
  }

  /** Closes without a word, as PostgreSQL does for what is not a Postgres client or is gone. */
  #abort(outcome: ConnectionOutcome, reason: string, cause?: unknown): void {
    if (!this.#settle()) return;
    this.#socket.destroy();
    this.#reject(new HandshakeError(outcome, reason, { cause }));
  }

  readonly #onTimeout = (): void => {
    const reason = `no startup packet within ${this.#options.timeoutMs} ms`;
    // Only inside TLS can the client trust (and libpq show) what we say; before that, PostgreSQL's silence.
    if (this.#state === HandshakeState.Secure) this.#refuse(handshakeTimeout(), ConnectionOutcome.Timeout);
    else this.#abort(ConnectionOutcome.Timeout, reason);
  };

  readonly #onError = (error: Error): void => {
    // After Done the socket is closing on our initiative; a reset then changes nothing.
    if (this.#state === HandshakeState.Done) return;
    const outcome = this.#state === HandshakeState.TlsHandshake ? tlsFailureOutcome(error) : ConnectionOutcome.ClientClosed;
    this.#abort(
      outcome,
      `${this.#state === HandshakeState.TlsHandshake ? 'TLS handshake failed' : 'socket error'}: ${error.message}`,
      error,
    );
  };

  readonly #onClose = (): void => {
    this.#abort(ConnectionOutcome.ClientClosed, `the client closed the connection (${this.#state})`);
  };
}

/**
 * Made outside the class: a closure made in a method shares that method's scope, `this` included,
 * and the TLSSocket keeps its SNI callback as long as the session lasts.
 */
function sniCallback(shown: { certificate: ServerCertificate }, table: CertificateTable): TLSSocketOptions['SNICallback'] {
  return (serverName, callback) => {
    shown.certificate = table.select(serverName);
    callback(null, shown.certificate.context);
  };
}

/** Kernel keepalive probes start after this long idle: dead clients are found without our timers. */
const KEEPALIVE_INITIAL_DELAY_MS = 60_000;

/**
 * The refusal for a packet the wire library rejected, or undefined where PostgreSQL closes
 * silently (a malformed SSLRequest, GSSENCRequest or CancelRequest).
 */
function malformedPacketRefusal(frame: Buffer, error: ProtocolError): Refusal | undefined {
  const code = frame.readUInt32BE(4);
  if (Object.values(StartupRequestCode).includes(code as StartupRequestCode)) return undefined;
  const major = code >>> 16;
  if (major !== PROTOCOL_MAJOR_VERSION) {
    const supported = `${PROTOCOL_MAJOR_VERSION}.0 to ${PROTOCOL_MAJOR_VERSION}.${LATEST_MINOR_VERSION}`;
    return new Refusal(
      SqlState.FeatureNotSupported,
      `unsupported frontend protocol ${major}.${code & 0xffff}: server supports ${supported}`,
    );
  }
  if (error.message === NO_USER_MESSAGE) return new Refusal(SqlState.InvalidAuthorization, NO_USER_MESSAGE);
  return new Refusal(SqlState.ProtocolViolation, error.message, { cause: error });
}

/**
 * A `replication` value PostgreSQL would refuse is refused here with PostgreSQL's words. Whether
 * the tenant allows replication is the session's to decide (session/replication.ts), once the
 * tenant is known.
 */
function checkReplicationValue(parameters: ReadonlyMap<string, string>): void {
  const value = parameters.get('replication');
  if (replicationRequest(value) !== undefined) return;
  throw new Refusal(SqlState.InvalidParameterValue, `invalid value for parameter "replication": "${value}"`, {
    hint: 'Valid values are: "false", 0, "true", 1, "database".',
  });
}

function tlsRequired(): Refusal {
  return new Refusal(SqlState.InvalidAuthorization, 'TLS is required', {
    detail: 'This server accepts only encrypted connections.',
    hint: 'Connect with sslmode=require (or verify-full).',
  });
}

function unencryptedData(request: string): Refusal {
  return new Refusal(SqlState.ProtocolViolation, `received unencrypted data after ${request}`, {
    detail: 'This could be either a client-software bug or evidence of an attempted man-in-the-middle attack.',
  });
}

function handshakeTimeout(): Refusal {
  return new Refusal(SqlState.QueryCanceled, 'canceling connection: no startup packet in time', {
    detail: 'The client did not send its startup message within the handshake timeout.',
  });
}

/**
 * A TLS failure the client announced with an alert (it rejected our certificate, say) or a
 * reset is the client going away; anything else is a refusal on our side (not TLS at all,
 * an ALPN mismatch, a protocol version below 1.2).
 */
function tlsFailureOutcome(error: Error & { code?: string }): ConnectionOutcome {
  const code = error.code ?? '';
  if (code === 'ECONNRESET' || code === 'EPIPE' || code.includes('_ALERT_')) return ConnectionOutcome.ClientClosed;
  return ConnectionOutcome.Refused;
}
