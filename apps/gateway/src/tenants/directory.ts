// Where the gateway learns about tenants (DESIGN.md step 6): the static tenants file
// (tenants-file.ts) or the control plane behind the resolver of libs/tenancy. Both answer one
// question, by tenant id; connection handling sees only this interface.
import type { Tenant } from '@tenantgate/tenancy';
import { buildErrorResponse } from '@tenantgate/wire';

export type TenantLookup =
  /** `version` increases with every change of the record, when the source keeps one (the control plane does). */
  | { readonly kind: 'found'; readonly tenant: Tenant; readonly version?: number }
  /** No such tenant: the client gets 08004. */
  | { readonly kind: 'unknown' };

/**
 * A directory of tenants. A source holds no sessions: reloading or replacing one never drops a
 * connection. The tenant it returns is shared and must not be modified.
 */
export interface TenantSource {
  /**
   * @throws TenantDirectoryUnreachableError when the directory cannot answer (and no cached
   *   answer may stand in); the signal's reason when `signal` aborts first.
   */
  resolve(tenantId: string, signal?: AbortSignal): Promise<TenantLookup>;
  /** Stops timers and connections; resolve() must not be called after. */
  close(): Promise<void>;
}

export const TENANT_DIRECTORY_UNREACHABLE_CODE = 'TG_ERR_TENANT_DIRECTORY_UNREACHABLE';

/** SQLSTATE sqlclient_unable_to_establish_sqlconnection, as DESIGN.md's table says for the control plane. */
export const TENANT_DIRECTORY_UNREACHABLE_SQLSTATE = '08001';

/**
 * The directory could not answer (the control plane is down or slow, with nothing cached). What
 * the client is told names no address; `logDetail` carries what an operator needs.
 */
export class TenantDirectoryUnreachableError extends Error {
  readonly code = TENANT_DIRECTORY_UNREACHABLE_CODE;
  readonly sqlState = TENANT_DIRECTORY_UNREACHABLE_SQLSTATE;
  readonly logDetail: string;

  constructor(logDetail: string, options?: ErrorOptions) {
    super('the tenant directory is unreachable', options);
    this.name = 'TenantDirectoryUnreachableError';
    this.logDetail = logDetail;
  }

  /** The FATAL ErrorResponse for the client. */
  toErrorResponse(): Buffer {
    return buildErrorResponse({ severity: 'FATAL', code: this.sqlState, message: this.message });
  }
}
