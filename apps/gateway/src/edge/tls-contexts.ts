// The gateway's server certificates as ready-made TLS secure contexts. Building a context costs
// about 1.2 ms (key parsing, chain building), so each is built once per certificate and shared
// by every connection; a reload builds the new set aside and swaps it in one assignment, so a
// connection sees either the old table or the new one, never a mix.
// Map: docs/architecture.md, step 3.
import { X509Certificate } from 'node:crypto';
import { createSecureContext, type SecureContext } from 'node:tls';
import { tlsServerEndPoint } from '@tenantgate/wire';
import { bySpecificity, matchSuffix, normalizeServerName } from './server-name.ts';
import { TlsConfigError } from '../errors.ts';

/** One certificate as PEM text (the caller reads files) and the SNI suffixes it serves. */
export interface CertificateInput {
  /** `.db.example.com`; several when one certificate carries several wildcards. */
  readonly suffixes: readonly string[];
  /** The leaf first, then intermediates. */
  readonly certPem: string;
  readonly keyPem: string;
}

/** A certificate ready for connections. */
export interface ServerCertificate {
  readonly suffixes: readonly string[];
  readonly context: SecureContext;
  /** The leaf the client sees: what SCRAM-SHA-256-PLUS binds to. */
  readonly certificate: X509Certificate;
  /**
   * RFC 5929 `tls-server-end-point` data of the leaf, computed once; undefined for signature
   * algorithms without a single hash, where SCRAM-SHA-256-PLUS must not be offered.
   */
  readonly tlsServerEndPoint: Buffer | undefined;
}

/** One immutable generation of certificates: a connection keeps the one it started with. */
export interface CertificateTable {
  /** The first configured certificate: for clients without SNI or with a name outside every suffix. */
  readonly fallback: ServerCertificate;
  readonly certificates: readonly ServerCertificate[];
  /** The certificate of the longest suffix `serverName` ends with, else {@link fallback}. */
  select(serverName: string | undefined): ServerCertificate;
}

/** TLS 1.0 and 1.1 are deprecated (RFC 8996); libpq 13+ defaults to ssl_min_protocol_version=TLSv1.2 too. */
export const MIN_TLS_VERSION = 'TLSv1.2';

/** The client leg's TLS policy (GATEWAY_TLS_MIN_VERSION, GATEWAY_TLS_CIPHERS). */
export interface EdgeTlsPolicy {
  readonly minVersion: 'TLSv1.2' | 'TLSv1.3';
  /** An OpenSSL cipher list; undefined: Node's defaults. */
  readonly ciphers: string | undefined;
}

const DEFAULT_POLICY: EdgeTlsPolicy = { minVersion: MIN_TLS_VERSION, ciphers: undefined };

export class TlsContexts {
  #table: CertificateTable;
  readonly #policy: EdgeTlsPolicy;

  /** @throws TlsConfigError when a certificate or key cannot be loaded. */
  constructor(inputs: readonly CertificateInput[], policy: EdgeTlsPolicy = DEFAULT_POLICY) {
    this.#policy = policy;
    this.#table = buildTable(inputs, policy);
  }

  /** The table for a new connection; read it once per connection. */
  get current(): CertificateTable {
    return this.#table;
  }

  /**
   * Replaces every certificate for connections that start from now on. Nothing changes when
   * any of the new ones fails to load (the error says which).
   * @throws TlsConfigError
   */
  reload(inputs: readonly CertificateInput[]): void {
    this.#table = buildTable(inputs, this.#policy);
  }
}

function buildTable(inputs: readonly CertificateInput[], policy: EdgeTlsPolicy): CertificateTable {
  if (inputs.length === 0) throw new TlsConfigError('no server certificate configured');
  const certificates = inputs.map((input, index) => loadCertificate(input, index, policy));
  const bySuffix = new Map<string, ServerCertificate>();
  for (const certificate of certificates) {
    for (const suffix of bySpecificity(certificate.suffixes)) {
      if (!bySuffix.has(suffix)) bySuffix.set(suffix, certificate);
    }
  }
  const sortedSuffixes = bySpecificity([...bySuffix.keys()]);
  const fallback = certificates[0];
  return {
    fallback,
    certificates,
    select(serverName) {
      const name = normalizeServerName(serverName);
      const match = name === undefined ? undefined : matchSuffix(name, sortedSuffixes);
      return (match && bySuffix.get(match.suffix)) ?? fallback;
    },
  };
}

function loadCertificate(input: CertificateInput, index: number, policy: EdgeTlsPolicy): ServerCertificate {
  const which = `server certificate ${index + 1} (${input.suffixes.join(', ') || 'no suffix'})`;
  let context: SecureContext;
  let certificate: X509Certificate;
  try {
    certificate = new X509Certificate(input.certPem);
    const { minVersion, ciphers } = policy;
    context = createSecureContext({ cert: input.certPem, key: input.keyPem, minVersion, ...(ciphers === undefined ? {} : { ciphers }) });
  } catch (cause) {
    // OpenSSL's own words ("key values mismatch", "no start line") say what is wrong.
    throw new TlsConfigError(`${which}: ${(cause as Error).message}`, { cause });
  }
  return { suffixes: bySpecificity(input.suffixes), context, certificate, tlsServerEndPoint: endPointOf(certificate) };
}

function endPointOf(certificate: X509Certificate): Buffer | undefined {
  try {
    return tlsServerEndPoint(certificate);
  } catch {
    // An exotic signature algorithm: only the PLUS mechanism is lost, which the caller sees as undefined.
    return undefined;
  }
}
