// The gateway's public surface for tests and embedding; `main.ts` is the process entry point.
export { createGateway, type Gateway, type GatewayOptions, type GatewaySettings } from './app.ts';
export { startAdminServer } from './ops/admin.ts';
export { loadConfig, helpText, ConfigError, type GatewayConfig } from './config/config.ts';
export { createLogger } from './telemetry/logger.ts';
export { createMetrics, type GatewayMetrics } from './telemetry/metrics.ts';
export { TenantsFileDirectory, loadTenantsFile } from './tenants/tenants-file.ts';
export type { TenantDirectory, TenantLookup } from './tenants/directory.ts';
export { ControlPlaneDirectory, type ControlPlaneDirectoryOptions } from './tenants/control-plane.ts';
