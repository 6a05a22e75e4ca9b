// The gateway's public surface for tests and embedding; `main.ts` is the process entry point.
export { createGateway, type Gateway, type GatewayOptions, type GatewaySettings } from './app.ts';
export { startAdminServer } from './ops/index.ts';
export { loadConfig, helpText, ConfigError, type GatewayConfig } from './config/index.ts';
export { createLogger, createMetrics, MetricName, type GatewayMetrics } from './telemetry/index.ts';
export {
  TenantsFileDirectory,
  loadTenantsFile,
  ControlPlaneDirectory,
  type ControlPlaneDirectoryOptions,
  type TenantDirectory,
  type TenantLookup,
} from './tenants/index.ts';
export { MemoryCancelKeyStore, RedisCancelKeyStore } from './cancel/index.ts';
