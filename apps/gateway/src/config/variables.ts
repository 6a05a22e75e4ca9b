// The gateway's variable table, kept in libs/runtime beside the control plane's so that both
// apps validate and document their variables the same way. The env-schema schema, the error
// lines of loadConfig and the `--help` text are all generated from it.
// Map: docs/architecture.md, "Inside the gateway".
import { GATEWAY_HELP, GATEWAY_VARIABLES, helpText as renderHelp, type GatewayVariableName } from '@tenantgate/runtime';

export { LOG_LEVELS, PROXY_PROTOCOL_MODES, TLS_MIN_VERSIONS, type ConfigVariable } from '@tenantgate/runtime';

export type VariableName = GatewayVariableName;

/** Every variable, in `--help` order; the names are literal types, so a typo does not compile. */
export const CONFIG_VARIABLES = GATEWAY_VARIABLES;

/** The `--help` text: every variable with its default, what it does and the values it accepts. */
export function helpText(): string {
  return renderHelp(GATEWAY_HELP);
}
