// TLS material for the backend leg (docs/architecture.md, step 10): secure contexts built once per identity
// (CA, client certificate and key) and shared by every connection, since one costs about 1.2 ms
// to build; TLS sessions kept per backend for resumption; and verify-full's name check.
import { X509Certificate, createHash } from 'node:crypto';
import { isIP } from 'node:net';
import { checkServerIdentity, createSecureContext, type PeerCertificate, type SecureContext, type SecureContextOptions } from 'node:tls';
import { BackendPhase, BackendTlsConfigError } from '../errors.ts';

/** TLS 1.0 and 1.1 are deprecated (RFC 8996); PostgreSQL 15's ssl_min_protocol_version is TLSv1.2 too. */
export const BACKEND_MIN_TLS_VERSION = 'TLSv1.2';

/** The oldest TLS version a backend may use: the tenant's `backend.tls.minVersion`, else the gateway's. */
export type BackendTlsMinVersion = 'TLSv1.2' | 'TLSv1.3';

/** Who the gateway is to a backend and whom it trusts there, as PEM text (the caller reads files). */
export interface BackendTlsIdentity {
  /** CA bundle the backend's certificate must chain to; replaces the system roots. */
  readonly caPem: string;
  /** The gateway's client certificate, leaf first, then intermediates. */
  readonly certPem: string;
  readonly keyPem: string;
  /** Absent: BACKEND_MIN_TLS_VERSION. */
  readonly minVersion?: BackendTlsMinVersion;
}

/** A client certificate and its key, as PEM text. */
export interface ClientCertificatePem {
  readonly certPem: string;
  readonly keyPem: string;
}

/** The gateway's defaults: `GATEWAY_BACKEND_CA` and `GATEWAY_BACKEND_CLIENT_CERT` + `_KEY`. */
export interface BackendTlsDefaults {
  readonly caPem: string;
  readonly clientCertificate: ClientCertificatePem;
}

/**
 * The identity for one tenant: its own CA (`backend.caCertificate`) or the default, and the
 * client certificate its `clientCertificate` reference names, which the caller resolves from
 * the secrets directory and passes as `clientCertificate`, or the default.
 */
export function backendTlsIdentity(
  backend: { readonly caCertificate?: string },
  defaults: BackendTlsDefaults,
  clientCertificate?: ClientCertificatePem,
): BackendTlsIdentity {
  const { certPem, keyPem } = clientCertificate ?? defaults.clientCertificate;
  return { caPem: backend.caCertificate ?? defaults.caPem, certPem, keyPem };
}

export type SecureContextFactory = (options: SecureContextOptions) => SecureContext;

export interface BackendTlsContextsOptions {
  /** Builds a context; tests inject one to count builds. Default `tls.createSecureContext`. */
  readonly createSecureContext?: SecureContextFactory;
  /** Identities kept, least recently used dropped first (default 1024). */
  readonly maxEntries?: number;
}

/**
 * Secure contexts by identity. A context evicted while connections use it stays valid for them;
 * a changed PEM (a rotated certificate) is a new identity and gets a new context.
 */
export class BackendTlsContexts {
  readonly #create: SecureContextFactory;
  readonly #maxEntries: number;
  readonly #contexts = new Map<string, SecureContext>();
  #builds = 0;

  constructor(options: BackendTlsContextsOptions = {}) {
    this.#create = options.createSecureContext ?? createSecureContext;
    this.#maxEntries = positiveInteger(options.maxEntries ?? 1024, 'maxEntries');
  }

  /** Contexts built so far (a cache miss each). */
  get builds(): number {
    return this.#builds;
  }

  get size(): number {
    return this.#contexts.size;
  }

  /** @throws BackendTlsConfigError when the CA, certificate or key cannot be loaded. */
  get(identity: BackendTlsIdentity): SecureContext {
    const key = identityKey(identity);
    const cached = this.#contexts.get(key);
    if (cached !== undefined) {
      this.#contexts.delete(key);
      this.#contexts.set(key, cached);
      return cached;
    }
    const context = this.#build(identity);
    this.#contexts.set(key, context);
    if (this.#contexts.size > this.#maxEntries) this.#contexts.delete(this.#contexts.keys().next().value as string);
    return context;
  }

  /**
   * Loads one half of an identity (a CA bundle, or a client certificate and its key) without
   * keeping it: a reload checks new defaults before they replace the old.
   * @throws BackendTlsConfigError
   */
  check(part: { readonly caPem: string } | ClientCertificatePem): void {
    const label = 'caPem' in part ? 'CA bundle' : `client certificate ${certificateLabel(part.certPem)}`;
    loading(label, () => {
      if ('caPem' in part) checkCaBundle(part.caPem);
      this.#create('caPem' in part ? { ca: part.caPem } : { cert: part.certPem, key: part.keyPem });
    });
  }

  #build(identity: BackendTlsIdentity): SecureContext {
    this.#builds++;
    return loading(`backend TLS identity (client certificate ${certificateLabel(identity.certPem)})`, () => {
      checkCaBundle(identity.caPem);
      return this.#create({
        ca: identity.caPem,
        cert: identity.certPem,
        key: identity.keyPem,
        minVersion: identity.minVersion ?? BACKEND_MIN_TLS_VERSION,
      });
    });
  }
}

/** Runs `load`; OpenSSL's words ("key values mismatch", "no start line") say what is wrong. */
function loading<T>(what: string, load: () => T): T {
  try {
    return load();
  } catch (cause) {
    throw new BackendTlsConfigError({ logDetail: `${what}: ${(cause as Error).message}`, phase: BackendPhase.Tls, cause });
  }
}

const PEM_CERTIFICATE = /-----BEGIN CERTIFICATE-----[^-]+-----END CERTIFICATE-----/g;

/**
 * OpenSSL skips CA text that is not a certificate without a word, which would leave a context
 * that trusts nothing and fails every connection as "untrusted": refuse it here instead.
 */
function checkCaBundle(caPem: string): void {
  const blocks = caPem.match(PEM_CERTIFICATE) ?? [];
  if (blocks.length === 0) throw new Error('the CA bundle holds no PEM certificate');
  for (const block of blocks) new X509Certificate(block);
}

/** A digest, so the cache holds no second copy of the private key text. */
function identityKey(identity: BackendTlsIdentity): string {
  const hash = createHash('sha256');
  for (const part of [identity.caPem, identity.certPem, identity.keyPem, identity.minVersion ?? BACKEND_MIN_TLS_VERSION]) {
    hash.update(`${part.length}:`).update(part);
  }
  return hash.digest('base64');
}

function certificateLabel(certPem: string): string {
  return createHash('sha256').update(certPem).digest('hex').slice(0, 16);
}

/** Where a TLS session may be resumed: the same backend, name and identity. */
export interface BackendSessionKey {
  readonly host: string;
  readonly port: number;
  readonly serverName: string;
  readonly secureContext: SecureContext;
}

/**
 * A session to resume, and the certificate it was verified with. Node does not give the peer
 * certificate of a resumed session (the chain is not part of it), and SCRAM-SHA-256-PLUS needs
 * it, so it is kept beside the ticket.
 */
export interface CachedTlsSession {
  readonly session: Buffer;
  readonly peerCertificate: X509Certificate;
}

export interface TlsSessionCacheOptions {
  /** Sessions kept, least recently used dropped first (default 1024). */
  readonly maxEntries?: number;
}

/**
 * The last TLS session (ticket) per backend. The key includes the secure context: a resumed
 * session carries the client certificate it was made with, so two tenants that share a backend
 * address with different client certificates must never resume each other's sessions.
 * Node skips the name check on a resumed session, which is sound only because the server name
 * is part of the key.
 */
export class TlsSessionCache {
  readonly #maxEntries: number;
  readonly #sessions = new Map<string, CachedTlsSession>();
  readonly #contextIds = new WeakMap<SecureContext, number>();
  #nextContextId = 1;

  constructor(options: TlsSessionCacheOptions = {}) {
    this.#maxEntries = positiveInteger(options.maxEntries ?? 1024, 'maxEntries');
  }

  get size(): number {
    return this.#sessions.size;
  }

  get(key: BackendSessionKey): CachedTlsSession | undefined {
    const id = this.#key(key);
    const session = this.#sessions.get(id);
    if (session !== undefined) {
      this.#sessions.delete(id);
      this.#sessions.set(id, session);
    }
    return session;
  }

  set(key: BackendSessionKey, entry: CachedTlsSession): void {
    const id = this.#key(key);
    this.#sessions.delete(id);
    this.#sessions.set(id, entry);
    if (this.#sessions.size > this.#maxEntries) this.#sessions.delete(this.#sessions.keys().next().value as string);
  }

  delete(key: BackendSessionKey): void {
    this.#sessions.delete(this.#key(key));
  }

  #key({ host, port, serverName, secureContext }: BackendSessionKey): string {
    let contextId = this.#contextIds.get(secureContext);
    if (contextId === undefined) {
      contextId = this.#nextContextId++;
      this.#contextIds.set(secureContext, contextId);
    }
    return `${contextId} ${port} ${host} ${serverName}`;
  }
}

/** The name verify-full checks the certificate against: `serverName`, else `host`. */
export function backendServerName(backend: { readonly host: string; readonly serverName?: string }): string {
  return backend.serverName ?? backend.host;
}

/** The SNI to send: none for an IP address (RFC 6066 §3 allows only host names there). */
export function sniName(serverName: string): string | undefined {
  return isIP(serverName) === 0 ? serverName : undefined;
}

/**
 * verify-full's name check, against `expected` whatever name the socket connected to: DNS names
 * against DNS SANs (wildcards as RFC 6125), IP addresses against IP SANs only.
 */
export function backendIdentityCheck(expected: string): (hostname: string, cert: PeerCertificate) => Error | undefined {
  return (_hostname, cert) => checkServerIdentity(expected, cert);
}

function positiveInteger(value: number, what: string): number {
  if (!Number.isInteger(value) || value < 1) throw new RangeError(`${what} must be a positive integer, got ${value}`);
  return value;
}
