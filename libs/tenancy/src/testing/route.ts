// Builders for the resolver's unit tests: a valid routing view, as the control plane serves it.
import type { TenantRoute } from '../tenant.ts';

/** A syntactically valid SCRAM secret (pg_authid format); the keys are not derived from anything. */
export const TEST_SCRAM_SECRET = `SCRAM-SHA-256$4096:c2FsdHNhbHRzYWx0$${'A'.repeat(43)}=:${'B'.repeat(43)}=`;

export function testRoute(id: string, overrides: Partial<TenantRoute> = {}): TenantRoute {
  return {
    id,
    status: 'active',
    backend: { host: '10.0.3.17', port: 5432, serverName: `${id}.internal.example.net` },
    authMode: 'gateway',
    userRewrite: {},
    roles: [{ name: 'app', scramSecret: TEST_SCRAM_SECRET, backendUser: `${id}_app` }],
    allowedCidrs: ['0.0.0.0/0', '::/0'],
    limits: { maxConnections: 100, connectsPerSecond: 50 },
    replication: 'none',
    version: 1,
    createdAt: '2025-01-01T00:00:00.000Z',
    updatedAt: '2025-01-01T00:00:00.000Z',
    ...overrides,
  };
}
