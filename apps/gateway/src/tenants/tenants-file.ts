// The static tenants file (GATEWAY_TENANTS_FILE, docs/architecture.md, step 6):
// `{ "tenants": [ ... ] }`, each entry a tenant record (libs/tenancy's schema). Loaded at start (a bad file stops start-up) and on SIGHUP (a bad file keeps the
// tenants in force and reports why). A role's `password` becomes a SCRAM secret at load and is
// not kept. Errors name the file and where in it: a line and column for bad JSON, a JSON pointer
// for each bad field. They never quote the file, which holds passwords and secrets.
import { readFile } from 'node:fs/promises';
import { TenantValidationError, materializeTenant, validateTenantsFile, type Tenant, type TenantInput } from '@tenantgate/tenancy';
import { createScramSecret } from '@tenantgate/wire';
import type { TenantLookup, TenantDirectory } from './directory.ts';
import { TenantsFileError } from '../errors.ts';

export interface TenantsFileOptions {
  /** Turns a role's `password` into a SCRAM secret; default createScramSecret (4096 iterations, random salt). */
  readonly hashPassword?: (password: string) => Promise<string> | string;
}

/**
 * Reads, parses and validates a tenants file, hashing passwords. Tenants come back frozen: they
 * are shared by every connection.
 * @throws TenantsFileError
 */
export async function loadTenantsFile(path: string, options: TenantsFileOptions = {}): Promise<Map<string, Tenant>> {
  const inputs = validate(path, parseJson(path, await readText(path)));
  const hashPassword = options.hashPassword ?? ((password: string) => createScramSecret(password));
  const tenants = await Promise.all(inputs.map((input, i) => materialize(path, input, i, hashPassword)));
  return new Map(tenants.map((tenant) => [tenant.id, deepFreeze(tenant)]));
}

async function readText(path: string): Promise<string> {
  try {
    return await readFile(path, 'utf8');
  } catch (error) {
    const { code, message } = error as NodeJS.ErrnoException;
    throw new TenantsFileError(path, `cannot read it (${code ?? message})`, { cause: error });
  }
}

/**
 * JSON.parse's SyntaxError quotes the text around the fault, which may be a password, and gives
 * a position only for some faults: the message is ours, from locateJsonError.
 */
function parseJson(path: string, text: string): unknown {
  // Editors on Windows may start the file with a byte order mark, which JSON.parse refuses.
  const body = text.charCodeAt(0) === 0xfeff ? text.slice(1) : text;
  try {
    return JSON.parse(body);
  } catch {
    const fault = locateJsonError(body);
    if (fault === undefined) throw new TenantsFileError(path, 'not valid JSON');
    const { line, column } = lineAndColumn(body, fault.offset);
    throw new TenantsFileError(path, `not valid JSON at line ${line}, column ${column}: ${fault.reason}`);
  }
}

function validate(path: string, document: unknown): TenantInput[] {
  try {
    return validateTenantsFile(document);
  } catch (error) {
    if (!(error instanceof TenantValidationError)) throw error;
    throw new TenantsFileError(path, error.message, { issues: error.issues });
  }
}

async function materialize(
  path: string,
  input: TenantInput,
  index: number,
  hashPassword: (password: string) => Promise<string> | string,
): Promise<Tenant> {
  try {
    return await materializeTenant(input, hashPassword);
  } catch (error) {
    const message = `/tenants/${index}/roles: a password could not be turned into a SCRAM secret (${(error as Error).message})`;
    throw new TenantsFileError(path, message, { issues: [{ path: `/tenants/${index}/roles`, message }] });
  }
}

function deepFreeze<T>(value: T): T {
  if (typeof value === 'object' && value !== null && !Object.isFrozen(value)) {
    for (const child of Object.values(value)) deepFreeze(child);
    Object.freeze(value);
  }
  return value;
}

export type TenantsFileReload = { readonly ok: true; readonly count: number } | { readonly ok: false; readonly error: TenantsFileError };

const UNKNOWN: TenantLookup = Object.freeze({ kind: 'unknown' });

/**
 * The tenants of a static file. reload() builds a whole new table and swaps it in at once, so a
 * lookup sees the old file or the new one, never a mix; reloads run one at a time, in call order.
 */
export class TenantsFileDirectory implements TenantDirectory {
  readonly path: string;
  readonly #options: TenantsFileOptions;
  #lookups: ReadonlyMap<string, TenantLookup>;
  #reloads: Promise<unknown> = Promise.resolve();
  #closed = false;

  /** Loads the file. @throws TenantsFileError: start-up must stop and say why. */
  static async open(path: string, options: TenantsFileOptions = {}): Promise<TenantsFileDirectory> {
    return new TenantsFileDirectory(path, await loadTenantsFile(path, options), options);
  }

  constructor(path: string, tenants: ReadonlyMap<string, Tenant>, options: TenantsFileOptions = {}) {
    this.path = path;
    this.#options = options;
    this.#lookups = lookupsOf(tenants);
  }

  /** Tenants in force. */
  get size(): number {
    return this.#lookups.size;
  }

  async resolve(tenantId: string, signal?: AbortSignal): Promise<TenantLookup> {
    signal?.throwIfAborted();
    if (this.#closed) throw new Error('the tenants file source is closed');
    return this.#lookups.get(tenantId) ?? UNKNOWN;
  }

  /** Reads the file again (SIGHUP). A bad file changes nothing; the caller logs the error. */
  /** The whole file is in memory: every answer is. */
  isCached(): boolean {
    return true;
  }

  reload(): Promise<TenantsFileReload> {
    const result = this.#reloads.then(() => this.#reload());
    this.#reloads = result;
    return result;
  }

  async close(): Promise<void> {
    this.#closed = true;
    await this.#reloads;
  }

  async #reload(): Promise<TenantsFileReload> {
    try {
      const tenants = await loadTenantsFile(this.path, this.#options);
      this.#lookups = lookupsOf(tenants);
      return { ok: true, count: tenants.size };
    } catch (error) {
      const failure =
        error instanceof TenantsFileError ? error : new TenantsFileError(this.path, (error as Error).message, { cause: error });
      return { ok: false, error: failure };
    }
  }
}

/** One frozen answer per tenant, made at load: resolve() allocates nothing. */
function lookupsOf(tenants: ReadonlyMap<string, Tenant>): ReadonlyMap<string, TenantLookup> {
  const lookups = new Map<string, TenantLookup>();
  for (const [id, tenant] of tenants) lookups.set(id, Object.freeze({ kind: 'found', tenant }));
  return lookups;
}

// ---------------------------------------------------------------------------------------------
// Where JSON text goes wrong

export interface JsonFault {
  readonly offset: number;
  readonly reason: string;
}

class JsonFaultFound extends Error {
  readonly fault: JsonFault;
  constructor(fault: JsonFault) {
    super(fault.reason);
    this.fault = fault;
  }
}

const JSON_NUMBER = /-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?/y;
const JSON_ESCAPES = new Set(['"', '\\', '/', 'b', 'f', 'n', 'r', 't']);
const JSON_LITERALS = ['true', 'false', 'null'];

/**
 * The offset of the first fault in `text` and what it is, by a recursive descent over the JSON
 * grammar (RFC 8259); undefined when it finds none (or the nesting is too deep to follow).
 */
export function locateJsonError(text: string): JsonFault | undefined {
  const scanner = new JsonScanner(text);
  try {
    scanner.document();
    return undefined;
  } catch (error) {
    if (error instanceof JsonFaultFound) return error.fault;
    if (error instanceof RangeError) return undefined;
    throw error;
  }
}

class JsonScanner {
  readonly #text: string;
  #pos = 0;

  constructor(text: string) {
    this.#text = text;
  }

  document(): void {
    this.#value();
    this.#space();
    if (this.#pos < this.#text.length) this.#fail('unexpected text after the end of the document');
  }

  #value(): void {
    this.#space();
    const c = this.#text[this.#pos];
    if (c === '{') return this.#object();
    if (c === '[') return this.#array();
    if (c === '"') return this.#string();
    if (c === '-' || (c >= '0' && c <= '9')) return this.#number();
    const literal = JSON_LITERALS.find((word) => this.#text.startsWith(word, this.#pos));
    if (literal === undefined) this.#fail(c === undefined ? 'unexpected end of the file' : `unexpected ${describeChar(c)}`);
    this.#pos += (literal as string).length;
  }

  #object(): void {
    this.#pos++;
    this.#space();
    if (this.#text[this.#pos] === '}') {
      this.#pos++;
      return;
    }
    for (;;) {
      this.#space();
      if (this.#text[this.#pos] !== '"') this.#fail('expected a property name in double quotes');
      this.#string();
      this.#space();
      if (this.#text[this.#pos] !== ':') this.#fail("expected ':' after the property name");
      this.#pos++;
      this.#value();
      if (this.#endOfList('}')) return;
    }
  }

  #array(): void {
    this.#pos++;
    this.#space();
    if (this.#text[this.#pos] === ']') {
      this.#pos++;
      return;
    }
    for (;;) {
      this.#value();
      if (this.#endOfList(']')) return;
    }
  }

  /** After a member: ',' (false: another follows) or the closing bracket (true). */
  #endOfList(close: string): boolean {
    this.#space();
    const c = this.#text[this.#pos];
    this.#pos++;
    if (c === ',') return false;
    if (c === close) return true;
    this.#pos--;
    return this.#fail(`expected ',' or '${close}'`);
  }

  #string(): void {
    this.#pos++;
    for (;;) {
      const c = this.#text[this.#pos];
      if (c === undefined) this.#fail('unterminated string');
      if (c === '"') break;
      if (c < ' ') this.#fail('control character in a string (write \\n, \\t, ...)');
      if (c === '\\') this.#escape();
      else this.#pos++;
    }
    this.#pos++;
  }

  #escape(): void {
    const c = this.#text[this.#pos + 1];
    if (c === 'u' && /^[0-9a-fA-F]{4}$/.test(this.#text.slice(this.#pos + 2, this.#pos + 6))) this.#pos += 6;
    else if (c !== undefined && JSON_ESCAPES.has(c)) this.#pos += 2;
    else this.#fail('bad escape in a string');
  }

  #number(): void {
    JSON_NUMBER.lastIndex = this.#pos;
    const match = JSON_NUMBER.exec(this.#text);
    if (match === null) this.#fail('bad number');
    this.#pos += (match as RegExpExecArray)[0].length;
  }

  #space(): void {
    while (' \t\n\r'.includes(this.#text[this.#pos] ?? 'x')) this.#pos++;
  }

  #fail(reason: string): never {
    throw new JsonFaultFound({ offset: this.#pos, reason });
  }
}

/** Quotes structural characters only: anything else may be part of a secret. */
function describeChar(c: string): string {
  return '{}[]:,"'.includes(c) ? `'${c}'` : 'character';
}

function lineAndColumn(text: string, offset: number): { line: number; column: number } {
  let line = 1;
  let lineStart = 0;
  for (let i = text.indexOf('\n'); i !== -1 && i < offset; i = text.indexOf('\n', i + 1)) {
    line++;
    lineStart = i + 1;
  }
  return { line, column: offset - lineStart + 1 };
}
