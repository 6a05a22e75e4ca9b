// The gateway's public surface for tests and embedding; `main.ts` is the process entry point.
export { createGateway, type Gateway, type GatewayOptions, type GatewaySettings } from './app.ts';
export { startAdminServer } from './admin.ts';
export { loadConfig, helpText, ConfigError, type GatewayConfig } from './config.ts';
export { createLogger } from './logger.ts';
export { createMetrics, type GatewayMetrics } from './metrics.ts';
export { TenantsFileSource, loadTenantsFile } from './tenants-file.ts';
export type { TenantSource, TenantLookup } from './tenant-source.ts';
export { ControlPlaneSource, type ControlPlaneSourceOptions } from './control-plane-source.ts';
