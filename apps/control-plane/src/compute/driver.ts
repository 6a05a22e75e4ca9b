// What starts and stops tenants' computes (docs/architecture.md, "Sleep and wake"): the platform's
// webhook (webhook.ts) or, for one machine, pg_ctl on a cluster's data directory (local.ts).
import type { Cluster } from '../clusters/cluster.ts';

export type ComputeAction = 'wake' | 'suspend';

/**
 * `done`: the compute is started (or stopped) now, and the control plane sets the status itself;
 * `accepted`: the platform took the request and will set the status (PATCH) when it is done.
 */
export type ComputeResult = 'done' | 'accepted';

export interface ComputeTarget {
  readonly tenant: string;
  /** The cluster the tenant was provisioned on, if any. */
  readonly cluster: Cluster | undefined;
}

export interface ComputeDriver {
  readonly name: 'webhook' | 'local';
  /** @throws ComputeFailedError; the job retries it with backoff */
  run(action: ComputeAction, target: ComputeTarget): Promise<ComputeResult>;
}
