// The startup parameters the backend receives (docs/architecture.md, step 9): the client's `user` becomes the
// role's backend user, or the tenant's template applied to it; `database` becomes the tenant's
// backend database when one is set. Everything else the client sent passes through in its order.
// @see https://www.postgresql.org/docs/current/protocol-message-formats.html#PROTOCOL-MESSAGE-FORMATS-STARTUPMESSAGE
import type { Tenant, TenantRole } from '@tenantgate/tenancy';
import { ReplicationRequest, SqlState, replicationRequest } from '@tenantgate/wire';
import { Refusal } from '../errors.ts';

/** PostgreSQL's NAMEDATALEN - 1: the longest role name, in bytes. */
export const MAX_ROLE_NAME_BYTES = 63;

/** The template when the tenant sets none: the client's own name. */
export const DEFAULT_USER_TEMPLATE = '{user}';

export interface RewriteStartupInput {
  /** The client's parameters as the handshake left them (tenant option stripped), in order. */
  readonly parameters: ReadonlyMap<string, string>;
  readonly tenant: Pick<Tenant, 'id' | 'userRewrite' | 'backend'>;
  /** The role the client authenticated as: the one named by its `user`. */
  readonly role: Pick<TenantRole, 'name' | 'backendUser'>;
}

// One pass over the template: a user name that contains "{tenant}" is not expanded again.
const PLACEHOLDER = /\{(user|tenant)\}/g;

/**
 * The parameters for the backend's StartupMessage: `user` first, then `database`, then the
 * client's other parameters in the order it sent them (what startBackendSession expects).
 * `database` is always set: to the tenant's backend database, else the client's, else the
 * client's own user name — PostgreSQL's default, taken before the rewrite, so a client that
 * names no database gets the database it would get connecting directly, not one named after
 * the rewritten user.
 * @throws Refusal 28000 when the rewritten user is not a valid PostgreSQL role name.
 */
export function rewriteStartup({ parameters, tenant, role }: RewriteStartupInput): Map<string, string> {
  const clientUser = parameters.get('user');
  // The handshake refuses a StartupMessage without `user`, and the role was looked up by it.
  if (clientUser === undefined) throw new Error('rewriteStartup: the startup parameters have no user');
  if (clientUser !== role.name) throw new Error('rewriteStartup: the role is not the one the client named');
  const user = checkBackendUser(role.backendUser ?? applyTemplate(tenant, clientUser), clientUser);
  const database = tenant.backend.database ?? parameters.get('database') ?? clientUser;
  const rewritten = new Map([
    ['user', user],
    ['database', database],
  ]);
  for (const [name, value] of parameters) {
    if (name !== 'user' && name !== 'database' && name !== 'replication') rewritten.set(name, value);
  }
  // Checked against the tenant before authentication (replication.ts); a false value changes nothing.
  const replication = parameters.get('replication');
  if (replicationRequest(replication) !== ReplicationRequest.None) rewritten.set('replication', replication as string);
  return rewritten;
}

function applyTemplate(tenant: RewriteStartupInput['tenant'], user: string): string {
  const template = tenant.userRewrite.template ?? DEFAULT_USER_TEMPLATE;
  return template.replace(PLACEHOLDER, (_match, name: string) => (name === 'user' ? user : tenant.id));
}

/**
 * A name PostgreSQL would not take as it is: over 63 bytes it is silently truncated by the
 * backend, and `{user}_{tenant}` cut short could name another tenant's role on a shared server.
 * The client is not told the backend name: that is the operator's business.
 */
function checkBackendUser(user: string, clientUser: string): string {
  const bytes = Buffer.byteLength(user, 'utf8');
  if (bytes > MAX_ROLE_NAME_BYTES) {
    throw new Refusal(
      SqlState.InvalidAuthorization,
      `user "${clientUser}" cannot be mapped to a backend role: the mapped name is too long`,
      {
        detail: `The mapped role name has ${bytes} bytes; PostgreSQL allows at most ${MAX_ROLE_NAME_BYTES}.`,
        hint: 'Use a shorter user name, or ask the administrator of this database to set a shorter backend user for this role.',
      },
    );
  }
  if (bytes === 0 || user.includes('\0')) {
    throw new Refusal(
      SqlState.InvalidAuthorization,
      `user "${clientUser}" cannot be mapped to a backend role: the mapped name is invalid`,
      {
        detail: 'The mapped role name is empty or contains a NUL byte.',
        hint: 'Ask the administrator of this database to correct the user mapping of this tenant.',
      },
    );
  }
  return user;
}
