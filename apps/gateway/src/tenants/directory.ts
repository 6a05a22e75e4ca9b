// Where the gateway learns about tenants (docs/architecture.md, step 6): the static tenants file
// (tenants-file.ts) or the control plane behind the resolver of libs/tenancy. Both answer one
// question, by tenant id; connection handling sees only this interface.
import type { Tenant } from '@tenantgate/tenancy';

export type TenantLookup =
  /** `version` increases with every change of the record, when the source keeps one (the control plane does). */
  | { readonly kind: 'found'; readonly tenant: Tenant; readonly version?: number }
  /** No such tenant: the client gets 08004. */
  | { readonly kind: 'unknown' };

/**
 * A directory of tenants. A source holds no sessions: reloading or replacing one never drops a
 * connection. The tenant it returns is shared and must not be modified.
 */
export interface TenantDirectory {
  /**
   * @throws TenantDirectoryUnreachableError when the directory cannot answer (and no cached
   *   answer may stand in); the signal's reason when `signal` aborts first.
   */
  resolve(tenantId: string, signal?: AbortSignal): Promise<TenantLookup>;
  /**
   * Wakes a sleeping tenant and resolves once its route is no longer `sleeping`; absent when the
   * source cannot wake tenants (a static file).
   * @throws TenantDirectoryUnreachableError when the wake cannot be asked for; the signal's reason
   */
  wake?(tenantId: string, signal: AbortSignal): Promise<TenantLookup>;
  /** Whether resolve() would answer from what the directory holds, asking nobody. */
  isCached(tenantId: string): boolean;
  /** Stops timers and connections; resolve() must not be called after. */
  close(): Promise<void>;
}
