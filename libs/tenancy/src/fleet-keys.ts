// The Redis keys of tenants' fleet-wide limits (docs/architecture.md, "Redis"): written by the
// gateways as they admit sessions, read by the control plane to see whether a tenant is in use
// (idle suspend). Both keys of a tenant share a hash tag, so they live on one Redis Cluster node.

/** The sorted set of a tenant's live leases: member = a session, score = when its lease expires. */
export function leasesKey(tenantId: string): string {
  return `tenantgate:leases:{${tenantId}}`;
}

/** The hash of a tenant's connect-rate bucket: `tokens` left at `at` (Redis time, ms). */
export function connectsKey(tenantId: string): string {
  return `tenantgate:connects:{${tenantId}}`;
}
