// A client of a sleeping tenant, once it has logged in at the edge (a client that cannot log in
// wakes nothing): the directory asks the control plane to wake the tenant and the client is held
// until its route is active, for at most GATEWAY_WAKE_TIMEOUT_MS. Every way it does not come up
// is 57P03, which clients and pools retry. See docs/architecture.md, "Sleep and wake".
import { SqlState } from '@tenantgate/wire';
import { TenantStatus, type Tenant } from '@tenantgate/tenancy';
import { Refusal, TenantDirectoryUnreachableError } from '../errors.ts';
import type { TenantDirectory } from '../tenants/index.ts';
import type { Logger } from '../telemetry/index.ts';

const RETRY_HINT = 'Retry in a few seconds: the database is being started.';

export interface WakeOptions {
  readonly timeoutMs: number;
  /** The client's: aborts when it goes away. */
  readonly signal: AbortSignal;
  readonly log: Logger;
}

/**
 * The tenant's route once it is awake.
 * @throws Refusal 57P03 when it cannot be woken or is not up in time; 08004 when it was deleted meanwhile
 */
export async function wakeTenant(tenants: TenantDirectory, tenant: Tenant, options: WakeOptions): Promise<Tenant> {
  if (tenants.wake === undefined) {
    throw new Refusal(SqlState.CannotConnectNow, `tenant "${tenant.id}" is sleeping`, {
      detail: 'This gateway reads its tenants from a file and cannot wake one.',
      hint: 'Set the tenant active in the tenants file.',
    });
  }
  const deadline = AbortSignal.any([options.signal, AbortSignal.timeout(options.timeoutMs)]);
  try {
    const lookup = await tenants.wake(tenant.id, deadline);
    if (lookup.kind === 'found' && lookup.tenant.status === TenantStatus.Sleeping) {
      throw new Refusal(SqlState.CannotConnectNow, 'the database system is starting up', {
        detail: `Tenant "${tenant.id}" is asleep and cannot be woken now.`,
        hint: RETRY_HINT,
      });
    }
    if (lookup.kind === 'found') return lookup.tenant;
    throw new Refusal(SqlState.ConnectionRejected, `tenant "${tenant.id}" does not exist`, {
      hint: 'Check the host name of your connection string: <tenant>.<domain>.',
    });
  } catch (error) {
    if (options.signal.aborted || error instanceof Refusal) throw error;
    if (deadline.aborted) {
      throw new Refusal(SqlState.CannotConnectNow, 'the database system is starting up', {
        detail: `Tenant "${tenant.id}" was asleep and is not up after ${options.timeoutMs} ms.`,
        hint: RETRY_HINT,
      });
    }
    if (!(error instanceof TenantDirectoryUnreachableError)) throw error;
    options.log.warn({ err: error }, 'cannot ask the control plane to wake the tenant');
    throw new Refusal(SqlState.CannotConnectNow, 'the database system is starting up', {
      detail: `Tenant "${tenant.id}" is asleep and the wake could not be asked for.`,
      hint: RETRY_HINT,
    });
  }
}
