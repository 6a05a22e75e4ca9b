// What the rest of the gateway uses of tenants/; everything else here is internal to it.
export { ControlPlaneDirectory, type ControlPlaneDirectoryOptions } from './control-plane.ts';
export { type TenantDirectory, type TenantLookup } from './directory.ts';
export { TenantsFileDirectory, loadTenantsFile } from './tenants-file.ts';
