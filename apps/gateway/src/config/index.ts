// What the rest of the gateway uses of config/; everything else here is internal to it.
export {
  ConfigError,
  type GatewayConfig,
  type ListenAddress,
  type PemSource,
  type ProxyProtocolMode,
  type VariableName,
  helpText,
  loadConfig,
} from './config.ts';
