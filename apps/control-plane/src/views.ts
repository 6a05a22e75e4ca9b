// What a stored tenant looks like to each reader: administrators never see a role's secret;
// gateways get the whole record with secrets (the routing view).
import type { TenantRoute } from '@tenantgate/tenancy';
import type { StoredTenant } from './store.ts';

export interface AdminRoleView {
  name: string;
  backendUser?: string;
  authMode?: string;
}

export type TenantView = Omit<TenantRoute, 'roles'> & {
  roles: AdminRoleView[];
  provisioning?: StoredTenant['provisioning'];
  compute?: StoredTenant['compute'];
};

export function adminView({ tenant, provisioning, compute, version, createdAt, updatedAt }: StoredTenant): TenantView {
  const roles = tenant.roles.map(({ name, backendUser, authMode }) => ({
    name,
    ...(backendUser === undefined ? {} : { backendUser }),
    ...(authMode === undefined ? {} : { authMode }),
  }));
  const extra = { ...(provisioning === undefined ? {} : { provisioning }), ...(compute === undefined ? {} : { compute }) };
  return { ...tenant, roles, ...extra, version, createdAt, updatedAt };
}

/** `issuerCaPem`: the control plane's issuing CA, which gateways then trust for the tenant's certificate modes. */
export function routeView({ tenant, version, createdAt, updatedAt }: StoredTenant, issuerCaPem?: string): TenantRoute {
  if (issuerCaPem === undefined) return { ...tenant, version, createdAt, updatedAt };
  const clientCertificates = { ...tenant.clientCertificates, issuerCaCertificate: issuerCaPem };
  return { ...tenant, clientCertificates, version, createdAt, updatedAt };
}
