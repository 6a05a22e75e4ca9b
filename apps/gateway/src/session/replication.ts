// Replication connections (docs/architecture.md, step 7): a StartupMessage with `replication`
// starts a walsender on the backend, which the tenant must allow (its `replication` field).
// Allowed, it follows the path of any session: edge authentication, rewrite, backend mutual
// TLS, splice; its CopyBoth stream is a query that never ends, so drain waits for its deadline.
import { ReplicationMode, type Tenant } from '@tenantgate/tenancy';
import { ReplicationRequest, SqlState, replicationRequest } from '@tenantgate/wire';
import { Refusal } from '../errors.ts';

/** What each tenant setting allows. `physical` streams the whole cluster, and implies logical. */
const ALLOWED: Readonly<Record<ReplicationMode, ReadonlySet<ReplicationRequest>>> = {
  [ReplicationMode.None]: new Set([ReplicationRequest.None]),
  [ReplicationMode.Logical]: new Set([ReplicationRequest.None, ReplicationRequest.Logical]),
  [ReplicationMode.Physical]: new Set([ReplicationRequest.None, ReplicationRequest.Logical, ReplicationRequest.Physical]),
};

/**
 * What the client's startup parameters ask for, when the tenant allows it.
 * @throws Refusal 0A000 naming the tenant setting that would allow it.
 */
export function checkReplication(tenant: Pick<Tenant, 'replication'>, parameters: ReadonlyMap<string, string>): ReplicationRequest {
  // The handshake has refused values PostgreSQL does not know.
  const request = replicationRequest(parameters.get('replication')) ?? ReplicationRequest.None;
  if (ALLOWED[tenant.replication].has(request)) return request;
  const needed = request === ReplicationRequest.Logical ? '"logical" or "physical"' : '"physical"';
  throw new Refusal(SqlState.FeatureNotSupported, `${request} replication connections are not allowed for this database`, {
    hint: `The tenant's "replication" setting must be ${needed}; ask the administrator of this database.`,
  });
}
