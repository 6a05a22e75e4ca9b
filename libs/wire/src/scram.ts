// SCRAM-SHA-256 and SCRAM-SHA-256-PLUS for both legs of the gateway: the server side checks a
// client's proof against a pg_authid-style secret and recovers the client's ClientKey; the client
// side logs into a backend with a password or with that ClientKey. Passwords are normalized by
// saslprep.ts; the PLUS binding data comes from channel-binding.ts.
// @see https://www.postgresql.org/docs/current/sasl-authentication.html
// @see https://www.rfc-editor.org/rfc/rfc5802 (SCRAM), rfc7677 (SHA-256), rfc5929 (channel binding)
//
// Message bytes are handled as latin1 strings: one character per byte, so the AuthMessage that
// both sides sign is exactly the bytes on the wire even when a peer sends non-UTF-8 bytes.

import { isUtf8 } from 'node:buffer';
import { type X509Certificate, createHash, createHmac, createSecretKey, pbkdf2, randomBytes, timingSafeEqual } from 'node:crypto';
import { promisify } from 'node:util';
import { tlsServerEndPoint } from './channel-binding.ts';
import { ScramAuthError, ScramError, ScramProtocolError } from './errors.ts';
import { saslprep } from './saslprep.ts';

export const ScramMechanism = {
  Sha256: 'SCRAM-SHA-256',
  Sha256Plus: 'SCRAM-SHA-256-PLUS',
} as const;
export type ScramMechanism = (typeof ScramMechanism)[keyof typeof ScramMechanism];

/** PostgreSQL's default iteration count (`scram_iterations`). */
export const SCRAM_DEFAULT_ITERATIONS = 4096;
const KEY_LENGTH = 32; // SHA-256 output
const SALT_LENGTH = 16; // PostgreSQL's SCRAM_DEFAULT_SALT_LEN
const NONCE_BYTES = 18; // PostgreSQL's SCRAM_RAW_NONCE_LEN: 24 base64 characters
const MAX_INT32 = 2 ** 31 - 1; // PostgreSQL keeps the iteration count in an int
const CHANNEL_BINDING_TYPE = 'tls-server-end-point';

const pbkdf2Async = promisify(pbkdf2);
type ScramErrorClass = new (message: string) => ScramError;

/** The mechanisms to offer in AuthenticationSASL, PLUS first as PostgreSQL lists them. */
export function scramMechanisms(channelBindingAvailable: boolean): ScramMechanism[] {
  return channelBindingAvailable ? [ScramMechanism.Sha256Plus, ScramMechanism.Sha256] : [ScramMechanism.Sha256];
}

// ---------------------------------------------------------------------------------------------
// Secrets

/** A role's SCRAM secret, as PostgreSQL stores it in pg_authid.rolpassword. */
export interface ScramSecret {
  readonly iterations: number;
  readonly salt: Buffer;
  readonly storedKey: Buffer;
  readonly serverKey: Buffer;
}

export interface ScramSecretOptions {
  iterations?: number;
  salt?: Buffer;
}

const SECRET_PATTERN = /^SCRAM-SHA-256\$([^$:]*):([^$:]*)\$([^$:]*):([^$:]*)$/;

/** Parses `SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>` (base64 fields). */
export function parseScramSecret(text: string): ScramSecret {
  const match = SECRET_PATTERN.exec(text);
  if (!match) {
    throw new ScramError('SCRAM secret is not of the form SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>');
  }
  const [, iterations, salt, storedKey, serverKey] = match;
  return {
    iterations: parseIterations(iterations, MAX_INT32, 'SCRAM secret', ScramError),
    salt: decodeBase64(salt, 'salt of the SCRAM secret', ScramError),
    storedKey: decodeBase64(storedKey, 'StoredKey of the SCRAM secret', ScramError, KEY_LENGTH),
    serverKey: decodeBase64(serverKey, 'ServerKey of the SCRAM secret', ScramError, KEY_LENGTH),
  };
}

export function formatScramSecret(secret: ScramSecret): string {
  const { iterations, salt, storedKey, serverKey } = checkSecret(secret);
  return `SCRAM-SHA-256$${iterations}:${b64(salt)}$${b64(storedKey)}:${b64(serverKey)}`;
}

/**
 * The secret PostgreSQL would store for `password` with this salt and iteration count. A string
 * is SASLprep'd as PostgreSQL does; bytes that are not UTF-8 are hashed as they are.
 */
export async function createScramSecret(password: string | Uint8Array, options: ScramSecretOptions = {}): Promise<string> {
  const { iterations = SCRAM_DEFAULT_ITERATIONS, salt = randomBytes(SALT_LENGTH) } = options;
  if (password.length === 0) throw new ScramError('cannot make a SCRAM secret for an empty password');
  checkSalting(iterations, salt);
  const keys = keysOf(await saltPassword(passwordBytes(password), salt, iterations));
  return formatScramSecret({ iterations, salt, storedKey: keys.storedKey, serverKey: keys.serverKey });
}

/**
 * The secret shown for a role that does not exist, like PostgreSQL's mock authentication
 * (auth-scram.c, scram_mock_salt): the salt comes from the role name and a server key, so one
 * name always gets the same salt and a client cannot tell it from a real role by probing.
 * Its keys belong to no password; the exchange is also marked to fail whatever the proof.
 */
export function mockScramSecret(mockKey: Buffer, role: string, iterations = SCRAM_DEFAULT_ITERATIONS): ScramSecret {
  if (mockKey.length < 16) throw new ScramError('the SCRAM mock key must have at least 16 bytes');
  const key = createSecretKey(mockKey);
  const derive = (label: string) => createHmac('sha256', key).update(`${label}\0${role}`).digest();
  const salt = derive('salt').subarray(0, SALT_LENGTH);
  return checkSecret({ iterations, salt, storedKey: derive('stored-key'), serverKey: derive('server-key') });
}

function checkSecret(secret: ScramSecret): ScramSecret {
  checkSalting(secret.iterations, secret.salt);
  if (secret.storedKey.length !== KEY_LENGTH || secret.serverKey.length !== KEY_LENGTH) {
    throw new ScramError(`SCRAM StoredKey and ServerKey must have ${KEY_LENGTH} bytes`);
  }
  return secret;
}

function checkSalting(iterations: number, salt: Buffer): void {
  if (!Number.isInteger(iterations) || iterations < 1 || iterations > MAX_INT32) {
    throw new ScramError(`SCRAM iteration count must be an integer from 1 to ${MAX_INT32}, got ${iterations}`);
  }
  if (salt.length === 0) throw new ScramError('SCRAM salt must not be empty');
}

// ---------------------------------------------------------------------------------------------
// Key derivation (RFC 5802 §3)

interface ScramKeys {
  clientKey: Buffer;
  storedKey: Buffer;
  serverKey: Buffer;
}

/** SaltedPassword := Hi(password, salt, i), and Hi is PBKDF2 with HMAC-SHA-256 (RFC 5802 §2.2). */
function saltPassword(password: Buffer, salt: Buffer, iterations: number): Promise<Buffer> {
  return pbkdf2Async(password, salt, iterations, KEY_LENGTH, 'sha256');
}

function keysOf(saltedPassword: Buffer): ScramKeys {
  const clientKey = hmac(saltedPassword, 'Client Key');
  return { clientKey, storedKey: sha256(clientKey), serverKey: hmac(saltedPassword, 'Server Key') };
}

/**
 * The key goes in as a KeyObject: given a Buffer, createHmac first probes it for a KeyObject,
 * which in Node 24 builds (and throws away) a TypeError with a stack trace: about 20 µs per HMAC,
 * against 6 µs this way, and a connection computes seven of them on the gateway's two legs.
 */
function hmac(key: Buffer, data: string | Buffer): Buffer {
  return createHmac('sha256', createSecretKey(key)).update(data).digest();
}

function sha256(data: Buffer): Buffer {
  return createHash('sha256').update(data).digest();
}

function xor(a: Buffer, b: Buffer): Buffer {
  const out = Buffer.allocUnsafe(a.length);
  for (let i = 0; i < a.length; i++) out[i] = a[i] ^ b[i];
  return out;
}

function b64(bytes: Buffer): string {
  return bytes.toString('base64');
}

/** The bytes PostgreSQL hashes: SASLprep'd UTF-8, or the raw bytes when they are not UTF-8. */
function passwordBytes(password: string | Uint8Array): Buffer {
  if (typeof password === 'string') return Buffer.from(saslprep(password), 'utf8');
  const bytes = Buffer.from(password);
  return isUtf8(bytes) ? Buffer.from(saslprep(bytes.toString('utf8')), 'utf8') : bytes;
}

// ---------------------------------------------------------------------------------------------
// Message grammar (RFC 5802 §7)

const PRINTABLE = /^[\x21-\x2b\x2d-\x7e]+$/; // printable ASCII except ','
const EXTENSION = /^[A-Za-z]=/; // attr-val: ALPHA "=" value
const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

function binary(message: Uint8Array | string): string {
  if (typeof message === 'string') return Buffer.from(message, 'utf8').toString('latin1');
  return Buffer.from(message.buffer, message.byteOffset, message.byteLength).toString('latin1');
}

/** A peer's string made safe for a log line: short and printable ASCII only. */
function describe(value: string | undefined): string {
  if (value === undefined) return 'the end of the message';
  const shown = value.length > 40 ? `${value.slice(0, 40)}...` : value;
  return `'${shown.replace(/[^\x20-\x7e]/g, (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`)}'`;
}

/** The value of `field` when it is `name=value`. */
function attribute(field: string | undefined, name: string, message: string, Err: ScramErrorClass): string {
  if (field === undefined || !field.startsWith(`${name}=`)) {
    throw new Err(`malformed SCRAM ${message}: expected attribute '${name}=', found ${describe(field)}`);
  }
  return field.slice(name.length + 1);
}

/** Optional extensions are read and ignored, as PostgreSQL does (RFC 5802 §5.1). */
function checkExtensions(fields: string[], message: string, Err: ScramErrorClass): void {
  const bad = fields.find((field) => !EXTENSION.test(field));
  if (bad !== undefined) throw new Err(`malformed SCRAM ${message}: unexpected field ${describe(bad)}`);
}

function decodeBase64(value: string, what: string, Err: ScramErrorClass, length?: number): Buffer {
  if (value === '' || !BASE64.test(value)) throw new Err(`${what} is not valid base64`);
  const bytes = Buffer.from(value, 'base64');
  if (length !== undefined && bytes.length !== length) {
    throw new Err(`${what} must have ${length} bytes, has ${bytes.length}`);
  }
  return bytes;
}

function parseIterations(value: string, max: number, what: string, Err: ScramErrorClass): number {
  const iterations = /^[1-9][0-9]{0,9}$/.test(value) ? Number(value) : NaN;
  if (!(iterations <= max)) {
    throw new Err(`${what}: iteration count must be an integer from 1 to ${max}, found ${describe(value)}`);
  }
  return iterations;
}

function checkNonce(nonce: string, what: string): string {
  if (!PRINTABLE.test(nonce)) throw new ScramError(`${what} must be printable ASCII without ','`);
  return nonce;
}

function makeNonce(): string {
  return randomBytes(NONCE_BYTES).toString('base64');
}

type BindingFlag = 'n' | 'y' | 'p';

interface ClientFirst {
  flag: BindingFlag;
  gs2Header: string;
  bare: string;
  nonce: string;
}

/** client-first-message = gs2-header [reserved-mext ","] username "," nonce ["," extensions] */
function parseClientFirst(message: string): ClientFirst {
  const what = 'client-first-message';
  const [flagField, authzid, ...bareFields] = message.split(',');
  const flag = parseBindingFlag(flagField);
  if (authzid?.startsWith('a=')) {
    throw new ScramProtocolError('SCRAM authorization identity (a=) is not supported');
  }
  if (authzid !== '') {
    throw new ScramProtocolError(`malformed SCRAM ${what}: expected ',' after the channel binding flag`);
  }
  if (bareFields[0]?.startsWith('m=')) {
    throw new ScramProtocolError('client requires an unsupported SCRAM extension (m=)');
  }
  attribute(bareFields[0], 'n', what, ScramProtocolError); // ignored: the role is the startup packet's user
  const nonce = attribute(bareFields[1], 'r', what, ScramProtocolError);
  if (!PRINTABLE.test(nonce)) throw new ScramProtocolError("SCRAM client nonce must be printable ASCII without ','");
  checkExtensions(bareFields.slice(2), what, ScramProtocolError);
  return { flag, gs2Header: `${flagField},,`, bare: bareFields.join(','), nonce };
}

/** gs2-cbind-flag = ("p=" cb-name) / "n" / "y" */
function parseBindingFlag(field: string): BindingFlag {
  if (field === 'n' || field === 'y') return field;
  if (!field.startsWith('p=')) {
    const found = describe(field);
    throw new ScramProtocolError(`malformed SCRAM client-first-message: unexpected channel binding flag ${found}`);
  }
  if (field.slice(2) !== CHANNEL_BINDING_TYPE) {
    throw new ScramProtocolError(`unsupported SCRAM channel binding type ${describe(field.slice(2))}`);
  }
  return 'p';
}

interface ClientFinal {
  channelBinding: string;
  nonce: string;
  proof: Buffer;
  withoutProof: string;
}

/** client-final-message = channel-binding "," nonce ["," extensions] "," proof */
function parseClientFinal(message: string): ClientFinal {
  const what = 'client-final-message';
  const fields = message.split(',');
  const channelBinding = attribute(fields[0], 'c', what, ScramProtocolError);
  decodeBase64(channelBinding, 'SCRAM channel binding attribute', ScramProtocolError);
  const nonce = attribute(fields[1], 'r', what, ScramProtocolError);
  const last = Math.max(fields.length - 1, 2);
  checkExtensions(fields.slice(2, last), what, ScramProtocolError);
  const extensionProof = fields.slice(2, last).find((field) => field.startsWith('p='));
  if (extensionProof !== undefined) throw new ScramProtocolError(`malformed SCRAM ${what}: fields after the proof`);
  const proofField = attribute(fields[last], 'p', what, ScramProtocolError);
  const proof = decodeBase64(proofField, 'SCRAM client proof', ScramProtocolError, KEY_LENGTH);
  return { channelBinding, nonce, proof, withoutProof: fields.slice(0, last).join(',') };
}

interface ServerFirst {
  nonce: string;
  salt: Buffer;
  iterations: number;
}

/** server-first-message = [reserved-mext ","] nonce "," salt "," iteration-count ["," extensions] */
function parseServerFirst(message: string, clientNonce: string, maxIterations: number): ServerFirst {
  const what = 'server-first-message';
  const fields = message.split(',');
  if (fields[0].startsWith('m=')) throw new ScramError('server requires an unsupported SCRAM extension (m=)');
  const nonce = attribute(fields[0], 'r', what, ScramError);
  if (!PRINTABLE.test(nonce) || !nonce.startsWith(clientNonce) || nonce.length === clientNonce.length) {
    throw new ScramError('SCRAM server nonce does not extend the client nonce');
  }
  const salt = decodeBase64(attribute(fields[1], 's', what, ScramError), 'SCRAM salt', ScramError);
  const iterations = parseIterations(attribute(fields[2], 'i', what, ScramError), maxIterations, what, ScramError);
  checkExtensions(fields.slice(3), what, ScramError);
  return { nonce, salt, iterations };
}

/** server-final-message = (server-error / verifier) ["," extensions] */
function parseServerFinal(message: string): Buffer {
  const what = 'server-final-message';
  const fields = message.split(',');
  if (fields[0].startsWith('e=')) {
    throw new ScramError(`server rejected the SCRAM exchange: ${describe(fields[0].slice(2))}`);
  }
  const verifier = attribute(fields[0], 'v', what, ScramError);
  checkExtensions(fields.slice(1), what, ScramError);
  return decodeBase64(verifier, 'SCRAM server signature', ScramError, KEY_LENGTH);
}

/** AuthMessage := client-first-message-bare "," server-first-message "," client-final-message-without-proof */
function authMessage(bare: string, serverFirst: string, withoutProof: string): Buffer {
  return Buffer.from(`${bare},${serverFirst},${withoutProof}`, 'latin1');
}

/** cbind-input = gs2-header [cbind-data], sent base64 in `c=` (RFC 5802 §7). */
function bindingInput(gs2Header: string, data: Buffer | undefined): string {
  return b64(Buffer.concat([Buffer.from(gs2Header, 'latin1'), data ?? Buffer.alloc(0)]));
}

// ---------------------------------------------------------------------------------------------
// Server side (the gateway authenticating a client)

export const ScramServerState = {
  AwaitingClientFirst: 'awaiting-client-first',
  AwaitingClientFinal: 'awaiting-client-final',
  Succeeded: 'succeeded',
  Failed: 'failed',
} as const;
export type ScramServerState = (typeof ScramServerState)[keyof typeof ScramServerState];

export interface ScramServerOptions {
  /**
   * The role's secret, or undefined when the role is unknown or has no usable secret: the
   * exchange then runs on a mock secret and fails at the end exactly like a wrong password.
   */
  secret: ScramSecret | undefined;
  /** Names the role being authenticated (e.g. `<tenant>/<user>`); seeds the mock salt. */
  role: string;
  /**
   * Key for mock salts: at least 16 random bytes, the same on every gateway and across restarts,
   * or an unknown role's salt would change and give it away.
   */
  mockKey: Buffer;
  /** Iteration count shown for unknown roles; use what real secrets use (default 4096). */
  mockIterations?: number;
  /** `tlsServerEndPoint()` of the certificate this connection presented; absent: no PLUS offered. */
  tlsServerEndPoint?: Buffer;
  /** Server nonce, printable ASCII without ',' (for tests; default 18 random bytes, base64). */
  nonce?: string;
}

/**
 * One SCRAM exchange with a client. A known and an unknown role run the same code and work: the
 * mock secret is built in both cases and the proof is checked in both; only the result differs.
 */
export class ScramServerExchange {
  #state: ScramServerState = ScramServerState.AwaitingClientFirst;
  readonly #secret: ScramSecret;
  readonly #doomed: boolean;
  readonly #channelBinding: Buffer | undefined;
  readonly #serverNonce: string;
  #first: ClientFirst = { flag: 'n', gs2Header: '', bare: '', nonce: '' };
  #serverFirst = '';
  #clientKey: Buffer | undefined;

  constructor(options: ScramServerOptions) {
    const mock = mockScramSecret(options.mockKey, options.role, options.mockIterations);
    this.#secret = options.secret === undefined ? mock : checkSecret(options.secret);
    this.#doomed = options.secret === undefined;
    this.#channelBinding = options.tlsServerEndPoint;
    this.#serverNonce = options.nonce === undefined ? makeNonce() : checkNonce(options.nonce, 'SCRAM server nonce');
  }

  get state(): ScramServerState {
    return this.#state;
  }

  /** The mechanisms to offer in AuthenticationSASL. */
  mechanisms(): ScramMechanism[] {
    return scramMechanisms(this.#channelBinding !== undefined);
  }

  /** SASLInitialResponse in; the server-first-message (AuthenticationSASLContinue) out. */
  handleClientFirst(mechanism: string, message: Uint8Array | string): string {
    return this.#advance(ScramServerState.AwaitingClientFirst, ScramServerState.AwaitingClientFinal, () =>
      this.#readClientFirst(mechanism, binary(message)),
    );
  }

  /** SASLResponse in; the server-final-message (AuthenticationSASLFinal) out. */
  handleClientFinal(message: Uint8Array | string): string {
    return this.#advance(ScramServerState.AwaitingClientFinal, ScramServerState.Succeeded, () =>
      this.#verify(parseClientFinal(binary(message))),
    );
  }

  /**
   * ClientKey = ClientProof XOR ClientSignature, checked against StoredKey (RFC 5802 §3). With it
   * the gateway can answer the backend's SCRAM challenge for this role without the password.
   */
  get clientKey(): Buffer {
    if (this.#state !== ScramServerState.Succeeded || this.#clientKey === undefined) {
      throw new ScramError(`the SCRAM ClientKey is known only after success (exchange is ${this.#state})`);
    }
    return Buffer.from(this.#clientKey);
  }

  #advance<T>(from: ScramServerState, to: ScramServerState, step: () => T): T {
    if (this.#state !== from) throw new ScramProtocolError(`unexpected SCRAM message: exchange is ${this.#state}`);
    this.#state = ScramServerState.Failed; // unless the step completes
    const result = step();
    this.#state = to;
    return result;
  }

  #readClientFirst(mechanism: string, message: string): string {
    if (!(this.mechanisms() as string[]).includes(mechanism)) {
      throw new ScramProtocolError(`client selected an invalid SASL mechanism ${describe(mechanism)}`);
    }
    const first = parseClientFirst(message);
    checkBindingFlag(first.flag, mechanism === ScramMechanism.Sha256Plus, this.#channelBinding !== undefined);
    const { salt, iterations } = this.#secret;
    this.#first = first;
    this.#serverFirst = `r=${first.nonce}${this.#serverNonce},s=${b64(salt)},i=${iterations}`;
    return this.#serverFirst;
  }

  #verify(final: ClientFinal): string {
    const { gs2Header, flag, bare, nonce } = this.#first;
    const expectedBinding = bindingInput(gs2Header, flag === 'p' ? this.#channelBinding : undefined);
    if (final.channelBinding !== expectedBinding) {
      throw new ScramAuthError('SCRAM channel binding check failed', '28000');
    }
    if (final.nonce !== nonce + this.#serverNonce) throw new ScramProtocolError('SCRAM nonce does not match');
    const message = authMessage(bare, this.#serverFirst, final.withoutProof);
    const clientKey = xor(final.proof, hmac(this.#secret.storedKey, message));
    // Compare first and look at #doomed after, so a mock exchange costs what a real one does.
    const matches = timingSafeEqual(sha256(clientKey), this.#secret.storedKey);
    if (!matches || this.#doomed) throw new ScramAuthError("SCRAM proof does not match the role's secret");
    this.#clientKey = clientKey;
    return `v=${b64(hmac(this.#secret.serverKey, message))}`;
  }
}

/** RFC 5802 §6 negotiation, with PostgreSQL's checks of the flag against the mechanism. */
function checkBindingFlag(flag: BindingFlag, plus: boolean, offered: boolean): void {
  if (plus && flag !== 'p') {
    throw new ScramProtocolError('client selected SCRAM-SHA-256-PLUS without channel binding data');
  }
  if (!plus && flag === 'p') {
    throw new ScramProtocolError('client selected SCRAM-SHA-256 but sent channel binding data');
  }
  // 'y': the client can bind but believes we cannot. We offered PLUS, so someone removed it.
  // PostgreSQL reports this as 28000 (invalid authorization), not as a protocol violation.
  if (flag === 'y' && offered) {
    throw new ScramAuthError('SCRAM channel binding negotiation error: PLUS was offered, but the client did not see it', '28000');
  }
}

// ---------------------------------------------------------------------------------------------
// Client side (the gateway logging into a backend)

export const ScramClientState = {
  Initial: 'initial',
  AwaitingServerFirst: 'awaiting-server-first',
  Deriving: 'deriving',
  AwaitingServerFinal: 'awaiting-server-final',
  Succeeded: 'succeeded',
  Failed: 'failed',
} as const;
export type ScramClientState = (typeof ScramClientState)[keyof typeof ScramClientState];

/** As libpq's `channel_binding`: 'prefer' binds when the server offers PLUS. */
export type ScramChannelBinding = 'disable' | 'prefer' | 'require';

interface ScramClientCommonOptions {
  /** Default 'prefer'. */
  channelBinding?: ScramChannelBinding;
  /** The server's certificate (`TLSSocket#getPeerX509Certificate()`); no binding without it. */
  peerCertificate?: Uint8Array | X509Certificate;
  /** Sent as `n=`; PostgreSQL ignores it, libpq sends '' (the default). */
  username?: string;
  /** Refuse servers that ask for more PBKDF2 iterations than this (default 1,000,000). */
  maxIterations?: number;
  /** Client nonce, printable ASCII without ',' (for tests; default 18 random bytes, base64). */
  nonce?: string;
}

/**
 * Either a password, or a ClientKey (from `ScramServerExchange#clientKey`). With a ClientKey the
 * server's signature can be checked only when its ServerKey is given too (the role's secret has
 * it); otherwise `serverVerified` stays false and the server is authenticated by verifying its
 * TLS certificate (the backend leg's verify-full mTLS).
 */
export type ScramClientOptions = ScramClientCommonOptions &
  (
    | { password: string | Uint8Array; clientKey?: undefined; serverKey?: undefined }
    | { clientKey: Buffer; serverKey?: Buffer; password?: undefined }
  );

interface ClientKeys {
  clientKey: Buffer;
  serverKey: Buffer | undefined;
}

interface ClientCredentials {
  password: Buffer | undefined;
  clientKey: Buffer | undefined;
  serverKey: Buffer | undefined;
}

/** One SCRAM exchange with a server. */
export class ScramClientExchange {
  #state: ScramClientState = ScramClientState.Initial;
  readonly #credentials: ClientCredentials;
  readonly #mode: ScramChannelBinding;
  readonly #peerCertificate: Uint8Array | X509Certificate | undefined;
  readonly #username: string;
  readonly #maxIterations: number;
  readonly #nonce: string;
  #bindingData: Buffer | undefined;
  #gs2Header = '';
  #bare = '';
  #serverSignature: Buffer | undefined;
  #serverVerified = false;

  constructor(options: ScramClientOptions) {
    this.#credentials = clientCredentials(options);
    this.#mode = options.channelBinding ?? 'prefer';
    if (!['disable', 'prefer', 'require'].includes(this.#mode)) {
      throw new ScramError(`unknown channel binding mode ${describe(this.#mode)}`);
    }
    this.#peerCertificate = options.peerCertificate;
    this.#username = options.username ?? '';
    this.#maxIterations = options.maxIterations ?? 1_000_000;
    this.#nonce = options.nonce === undefined ? makeNonce() : checkNonce(options.nonce, 'SCRAM client nonce');
  }

  get state(): ScramClientState {
    return this.#state;
  }

  /** True once the server proved it knows the secret; false when only TLS authenticates it. */
  get serverVerified(): boolean {
    return this.#serverVerified;
  }

  /** AuthenticationSASL's mechanisms in; the chosen mechanism and client-first-message out. */
  start(serverMechanisms: readonly string[]): { mechanism: ScramMechanism; message: string } {
    return this.#advance(ScramClientState.Initial, ScramClientState.AwaitingServerFirst, () => {
      const mechanism = this.#chooseMechanism(serverMechanisms);
      // 'y': we could bind but the server did not offer PLUS (RFC 5802 §6), as libpq says it.
      const plus = mechanism === ScramMechanism.Sha256Plus;
      const flag = plus ? `p=${CHANNEL_BINDING_TYPE}` : this.#bindingData ? 'y' : 'n';
      const username = this.#username.replaceAll('=', '=3D').replaceAll(',', '=2C');
      this.#gs2Header = `${flag},,`;
      this.#bare = binary(`n=${username},r=${this.#nonce}`);
      return { mechanism, message: `${this.#gs2Header}n=${username},r=${this.#nonce}` };
    });
  }

  /** AuthenticationSASLContinue in; the client-final-message (SASLResponse) out. */
  async handleServerFirst(message: Uint8Array | string): Promise<string> {
    const serverFirst = binary(message);
    const parsed = this.#advance(ScramClientState.AwaitingServerFirst, ScramClientState.Deriving, () =>
      parseServerFirst(serverFirst, this.#nonce, this.#maxIterations),
    );
    const keys = await this.#keys(parsed).catch((error: unknown) => {
      this.#state = ScramClientState.Failed;
      throw error;
    });
    return this.#advance(ScramClientState.Deriving, ScramClientState.AwaitingServerFinal, () =>
      this.#clientFinal(serverFirst, parsed.nonce, keys),
    );
  }

  /** AuthenticationSASLFinal in; throws unless the server's signature checks out (or cannot be checked). */
  handleServerFinal(message: Uint8Array | string): void {
    this.#advance(ScramClientState.AwaitingServerFinal, ScramClientState.Succeeded, () => {
      const signature = parseServerFinal(binary(message));
      const expected = this.#serverSignature;
      if (expected !== undefined && !timingSafeEqual(signature, expected)) {
        throw new ScramError("SCRAM server signature does not match: the server does not know the role's secret");
      }
      this.#serverVerified = expected !== undefined;
    });
  }

  #advance<T>(from: ScramClientState, to: ScramClientState, step: () => T): T {
    if (this.#state !== from) throw new ScramError(`unexpected SCRAM message: exchange is ${this.#state}`);
    this.#state = ScramClientState.Failed; // unless the step completes
    const result = step();
    this.#state = to;
    return result;
  }

  #chooseMechanism(offered: readonly string[]): ScramMechanism {
    this.#bindingData = this.#mode === 'disable' ? undefined : this.#endPoint();
    if (this.#bindingData && offered.includes(ScramMechanism.Sha256Plus)) return ScramMechanism.Sha256Plus;
    if (this.#mode === 'require') {
      throw new ScramError(
        this.#bindingData
          ? 'channel binding is required, but the server does not offer SCRAM-SHA-256-PLUS'
          : 'channel binding is required, but no server certificate was given',
      );
    }
    if (offered.includes(ScramMechanism.Sha256)) return ScramMechanism.Sha256;
    const names = offered.map((name) => describe(name)).join(', ');
    throw new ScramError(`server offers no usable SASL mechanism (${names})`);
  }

  /** Binding data of the peer certificate; under 'prefer' a certificate we cannot bind to means no binding. */
  #endPoint(): Buffer | undefined {
    if (this.#peerCertificate === undefined) return undefined;
    try {
      return tlsServerEndPoint(this.#peerCertificate);
    } catch (error) {
      if (this.#mode === 'require') throw error;
      return undefined;
    }
  }

  async #keys(server: ServerFirst): Promise<ClientKeys> {
    const { password, clientKey, serverKey } = this.#credentials;
    if (password === undefined) return { clientKey: clientKey as Buffer, serverKey };
    const keys = keysOf(await saltPassword(password, server.salt, server.iterations));
    return { clientKey: keys.clientKey, serverKey: keys.serverKey };
  }

  #clientFinal(serverFirst: string, nonce: string, keys: ClientKeys): string {
    const bound = this.#gs2Header.startsWith('p=') ? this.#bindingData : undefined;
    const withoutProof = `c=${bindingInput(this.#gs2Header, bound)},r=${nonce}`;
    const message = authMessage(this.#bare, serverFirst, withoutProof);
    // ClientProof := ClientKey XOR HMAC(StoredKey, AuthMessage) (RFC 5802 §3)
    const proof = xor(keys.clientKey, hmac(sha256(keys.clientKey), message));
    this.#serverSignature = keys.serverKey && hmac(keys.serverKey, message);
    return `${withoutProof},p=${b64(proof)}`;
  }
}

function clientCredentials(options: ScramClientOptions): ClientCredentials {
  const { password, clientKey, serverKey } = options;
  if ((password === undefined) === (clientKey === undefined)) {
    throw new ScramError('a SCRAM client needs either a password or a ClientKey');
  }
  if (password !== undefined) {
    if (serverKey !== undefined) throw new ScramError('a SCRAM ServerKey goes with a ClientKey, not a password');
    return { password: passwordBytes(password), clientKey: undefined, serverKey: undefined };
  }
  if (clientKey?.length !== KEY_LENGTH || (serverKey !== undefined && serverKey.length !== KEY_LENGTH)) {
    throw new ScramError(`a SCRAM ClientKey and ServerKey must have ${KEY_LENGTH} bytes`);
  }
  return { password: undefined, clientKey, serverKey };
}
