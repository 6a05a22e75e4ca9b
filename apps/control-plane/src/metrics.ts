// Every Prometheus metric of the control plane, on a registry of its own (several apps in one
// test process each get a fresh set). Label values are closed sets: the route label is the
// route template (`/v1/routes/:id`), never the URL, so tenant ids never become series.
import { Counter, Gauge, Histogram, Registry } from 'prom-client';

export const MetricName = {
  HttpRequestDuration: 'tenantgate_http_request_duration_seconds',
  Tenants: 'tenantgate_tenants',
  InvalidationsPending: 'tenantgate_invalidations_pending',
  InvalidationsPublished: 'tenantgate_invalidations_published_total',
  InvalidationFailures: 'tenantgate_invalidation_failures_total',
  CertificatesIssued: 'tenantgate_certificates_issued_total',
  ProvisioningJobs: 'tenantgate_provisioning_jobs',
  ProvisioningFailures: 'tenantgate_provisioning_failures_total',
} as const;
export type MetricName = (typeof MetricName)[keyof typeof MetricName];

/** The route label of requests that matched no route (404s): one series, whatever the URL. */
export const UNMATCHED_ROUTE = 'unmatched';

export interface ControlPlaneMetrics {
  readonly registry: Registry;
  readonly httpRequestDuration: Histogram<'method' | 'route' | 'status'>;
  readonly invalidationsPublished: Counter;
  readonly invalidationFailures: Counter;
  readonly certificatesIssued: Counter;
  readonly provisioningFailures: Counter<'action'>;
}

export interface MetricsSources {
  /** Tenants in the store, read at scrape time. */
  countTenants(): Promise<number>;
  /** Outbox rows not yet in Redis, read at scrape time. */
  pendingInvalidations(): Promise<number>;
  /** Provisioning jobs not done, by action, read at scrape time. */
  pendingJobs(): Promise<Readonly<Record<string, number>>>;
}

/** The actions of provisioning jobs (clusters/jobs.ts): the label's closed set. */
const JOB_ACTIONS = ['create', 'rollback', 'drop', 'wake', 'suspend'] as const;

export function createMetrics(sources: MetricsSources): ControlPlaneMetrics {
  const registry = new Registry();
  const httpRequestDuration = new Histogram({
    name: MetricName.HttpRequestDuration,
    help: 'Control plane HTTP requests by method, route template and status code.',
    labelNames: ['method', 'route', 'status'] as const,
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
    registers: [registry],
  });
  new Gauge({
    name: MetricName.Tenants,
    help: 'Tenants in the store.',
    registers: [registry],
    async collect() {
      this.set(await orNaN(sources.countTenants()));
    },
  });
  new Gauge({
    name: MetricName.InvalidationsPending,
    help: 'Tenant invalidations committed but not yet published to Redis (the outbox).',
    registers: [registry],
    async collect() {
      this.set(await orNaN(sources.pendingInvalidations()));
    },
  });
  const invalidationsPublished = new Counter({
    name: MetricName.InvalidationsPublished,
    help: 'Tenant invalidations published to Redis.',
    registers: [registry],
  });
  const invalidationFailures = new Counter({
    name: MetricName.InvalidationFailures,
    help: 'Failed attempts to publish invalidations (retried from the outbox).',
    registers: [registry],
  });
  const certificatesIssued = new Counter({
    name: MetricName.CertificatesIssued,
    help: "Client certificates issued for tenants' roles.",
    registers: [registry],
  });
  new Gauge({
    name: MetricName.ProvisioningJobs,
    help: 'Provisioning jobs on clusters not done yet, by action; a job that stays is retrying (see the log).',
    labelNames: ['action'] as const,
    registers: [registry],
    async collect() {
      const pending = await sources.pendingJobs().catch(() => undefined);
      for (const action of JOB_ACTIONS) this.set({ action }, pending === undefined ? Number.NaN : (pending[action] ?? 0));
    },
  });
  const provisioningFailures = new Counter({
    name: MetricName.ProvisioningFailures,
    help: 'Failed attempts of provisioning jobs, by action (a create is retried or rolled back, the others retried).',
    labelNames: ['action'] as const,
    registers: [registry],
  });
  return { registry, httpRequestDuration, invalidationsPublished, invalidationFailures, certificatesIssued, provisioningFailures };
}

/** A store that cannot be read gives NaN (unknown) instead of failing the whole scrape. */
async function orNaN(value: Promise<number>): Promise<number> {
  return value.catch(() => Number.NaN);
}
