// What both apps share at start-up: variable tables and `--help`, listen addresses, PEM sources,
// the words of start-up failures, and the pino setup.
export {
  LISTEN_EXPECTS,
  LOG_LEVEL_VARIABLE,
  LOG_LEVELS,
  variablesSchema,
  type ConfigVariable,
  type LogLevel,
  type VariableSchema,
} from './variables.ts';
export { helpText, markdownReference, type HelpNote, type HelpPage } from './help.ts';
export { GATEWAY_HELP, GATEWAY_VARIABLES, PROXY_PROTOCOL_MODES, TLS_MIN_VERSIONS, type GatewayVariableName } from './gateway-variables.ts';
export { CONTROL_PLANE_HELP, CONTROL_PLANE_VARIABLES, type ControlPlaneVariableName } from './control-plane-variables.ts';
export { badTokenIndex, bearerToken, KnownTokens, MAX_TOKEN_LENGTH, MIN_TOKEN_LENGTH, TOKENS_EXPECTS } from './tokens.ts';
export { describeListenFailure, formatListenAddress, parseListenAddress, type ListenAddress } from './listen.ts';
export { PEM_BEGIN, PemReadError, pemSource, readPemSource, type PemKind, type PemSource } from './pem.ts';
export { describeSystemError } from './system-errors.ts';
export { createLogger, loggerOptions, REDACT_PATHS, REDACTED, type Logger, type LoggerOptions } from './logger.ts';
export { startTracing, traceFields, tracingWanted, type Tracing } from './tracing.ts';
