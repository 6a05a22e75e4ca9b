// The shape of a variable table: one entry per environment variable, from which each app
// generates the JSON schema its validator runs (env-schema in the gateway, @fastify/env in the
// control plane), its error lines and its `--help`, so a variable cannot be validated without
// being documented, or documented with a default it does not have.

/** The JSON schema fragment of one variable (keywords Ajv understands, plus env-schema's `separator`). */
export interface VariableSchema {
  readonly type: 'string' | 'integer' | 'boolean';
  readonly default?: string | number | boolean;
  readonly enum?: readonly string[];
  readonly pattern?: string;
  readonly minimum?: number;
  readonly maximum?: number;
  /** Split the value into a list at this separator. */
  readonly separator?: string;
}

export interface ConfigVariable {
  readonly name: string;
  readonly schema: VariableSchema;
  /** Start-up stops when it is unset. */
  readonly required?: boolean;
  /** The values accepted; ends the `expected ...` part of an error line and the `--help` entry. */
  readonly expects: string;
  /** One line for `--help`. */
  readonly description: string;
  /** Never echo the value in an error line: it may hold a credential. */
  readonly secret?: boolean;
  /** An empty value means something (off) instead of "unset, use the default". */
  readonly emptyIsValue?: boolean;
}

export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

/** Both apps log the same way, so they read LOG_LEVEL the same way. */
export const LOG_LEVEL_VARIABLE = {
  name: 'LOG_LEVEL',
  schema: { type: 'string', default: 'info', enum: LOG_LEVELS },
  expects: `one of ${LOG_LEVELS.join(', ')}`,
  description: 'Lowest level of the JSON log lines written to stdout.',
} as const satisfies ConfigVariable;

export const LISTEN_EXPECTS = 'host:port, [ipv6]:port or :port, with a port from 0 to 65535';

/** The JSON schema of an object holding the variables (their names as properties). */
export function variablesSchema(variables: readonly ConfigVariable[]): {
  type: 'object';
  required: string[];
  properties: Record<string, VariableSchema>;
} {
  return {
    type: 'object',
    required: variables.filter((v) => v.required === true).map((v) => v.name),
    properties: Object.fromEntries(variables.map((v) => [v.name, { ...v.schema }])),
  };
}
