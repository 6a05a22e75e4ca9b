// Every Prometheus metric of the gateway, on a registry of its own: tests (and several gateways
// in one process) each get a fresh set, and nothing leaks through prom-client's global registry.
//
// No metric has a tenant label. A fleet serves thousands of tenants; a tenant label on the phase
// histograms alone would make tenants x 7 phases x 19 series (16 buckets, +Inf, sum, count) per
// gateway, enough to overload the Prometheus that scrapes the fleet. Per-tenant detail belongs
// to the logs and traces, which carry the tenant id on every line and span. Label values are the
// closed sets below, and the handle types only accept them, so cardinality is fixed at compile time.
// Map: docs/architecture.md, "Inside the gateway".
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import { CacheResult, CacheTier } from '@tenantgate/tenancy';
import { SqlState } from '@tenantgate/wire';

export const METRIC_PREFIX = 'tenantgate_';

export const MetricName = {
  Connections: 'tenantgate_connections_total',
  ActiveSessions: 'tenantgate_active_sessions',
  PhaseDuration: 'tenantgate_phase_duration_seconds',
  CacheRequests: 'tenantgate_cache_requests_total',
  ControlPlaneRequestDuration: 'tenantgate_control_plane_request_duration_seconds',
  Bytes: 'tenantgate_bytes_total',
  Refusals: 'tenantgate_refusals_total',
  CancelRequests: 'tenantgate_cancel_requests_total',
  FleetLimitsLost: 'tenantgate_fleet_limits_lost',
  CertificateExpiry: 'tenantgate_certificate_expiry_seconds',
  Draining: 'tenantgate_draining',
} as const;
export type MetricName = (typeof MetricName)[keyof typeof MetricName];

/** The gateway's own metric names (prom-client's default process metrics come on top). */
export const METRIC_NAMES: readonly MetricName[] = Object.values(MetricName);

/** How a client connection ended. */
export const ConnectionOutcome = {
  /** Reached the splice: a session. */
  Session: 'session',
  /** Refused with an ErrorResponse before the splice; tenantgate_refusals_total has the SQLSTATE. */
  Refused: 'refused',
  /** A CancelRequest connection; tenantgate_cancel_requests_total has the result. */
  Cancel: 'cancel',
  /** A phase before the splice ran out of time. */
  Timeout: 'timeout',
  /** The client went away before the splice (psql does, to prompt for a password). */
  ClientClosed: 'client_closed',
  /** A fault of the gateway itself; logged with the error. */
  Error: 'error',
} as const;
export type ConnectionOutcome = (typeof ConnectionOutcome)[keyof typeof ConnectionOutcome];

export const Phase = {
  Tls: 'tls',
  Resolve: 'resolve',
  Admit: 'admit',
  Auth: 'auth',
  /** A sleeping tenant's compute starting, from the wake request to its route turning active. */
  Wake: 'wake',
  BackendConnect: 'backend_connect',
  BackendTls: 'backend_tls',
  /** From accept to the splice. */
  Total: 'total',
} as const;
export type Phase = (typeof Phase)[keyof typeof Phase];

// The resolver reports cache lookups in these words; the metric's labels are the same values.
export { CacheResult, CacheTier };

export const Direction = { ClientToBackend: 'client_to_backend', BackendToClient: 'backend_to_client' } as const;
export type Direction = (typeof Direction)[keyof typeof Direction];

export const CancelResult = {
  /** Sent to the backend that holds the session (possibly through another gateway's key). */
  Forwarded: 'forwarded',
  /** No session has this key; dropped silently, as PostgreSQL does. */
  UnknownKey: 'unknown_key',
  RateLimited: 'rate_limited',
  /** Not held by this gateway, and Redis (where another gateway's keys are) could not be asked. */
  StoreUnavailable: 'store_unavailable',
  /** The backend could not be reached. */
  Error: 'error',
} as const;
export type CancelResult = (typeof CancelResult)[keyof typeof CancelResult];

/** The label values of refusals_total: libs/wire's table of the SQLSTATEs the gateway sends. */
const REFUSAL_SQLSTATES: readonly SqlState[] = Object.values(SqlState);

/** The HTTP status of a control plane response, or `error` when none came (network, timeout). */
export type ControlPlaneStatus = `${number}` | 'error';

/** A counter that only takes the declared label values. */
export interface LabeledCounter<L> {
  inc(labels: L, value?: number): void;
}

/** A histogram that only takes the declared label values. */
export interface LabeledHistogram<L> {
  observe(labels: L, seconds: number): void;
  /** Starts a timer; calling the result observes the elapsed seconds and returns them. */
  startTimer(labels: L): () => number;
}

export interface GatewayMetrics {
  readonly registry: Registry;
  readonly connections: LabeledCounter<{ outcome: ConnectionOutcome }>;
  /** Sessions past the splice, now. */
  readonly activeSessions: Gauge;
  readonly phaseDuration: LabeledHistogram<{ phase: Phase }>;
  readonly cacheRequests: LabeledCounter<{ tier: CacheTier; result: CacheResult }>;
  readonly controlPlaneRequestDuration: LabeledHistogram<{ status: ControlPlaneStatus }>;
  /**
   * Spliced bytes. Add a session's bytes in batches (per read burst or on close), not per
   * chunk: each inc hashes its labels.
   */
  readonly bytes: LabeledCounter<{ direction: Direction }>;
  readonly refusals: LabeledCounter<{ sqlstate: SqlState }>;
  readonly cancelRequests: LabeledCounter<{ result: CancelResult }>;
  /** 1 while Redis cannot be asked and this process enforces tenants' limits alone; 0 otherwise. */
  readonly fleetLimitsLost: Gauge;
  /**
   * When each certificate in use expires (ms since the epoch), by name: `edge:<suffixes>`,
   * `backend_ca`, `backend_client`. Exported as seconds left, computed at each scrape.
   */
  readonly certificateExpiries: Map<string, number>;
  /** 1 from SIGTERM on, while the process drains its sessions before it exits. */
  readonly draining: Gauge;
}

// From 100 µs (resolve and admit on a warm cache) to 10 s (a cold backend behind a timeout).
const PHASE_BUCKETS = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];
// An HTTP round trip inside the VPC: a millisecond when healthy, seconds when not.
const HTTP_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

export function createMetrics(): GatewayMetrics {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: METRIC_PREFIX });
  const registers = [registry];
  const counter = <L extends string>(name: MetricName, help: string, labelNames: readonly L[]) =>
    new Counter<L>({ name, help, labelNames, registers });
  const histogram = <L extends string>(name: MetricName, help: string, labelNames: readonly L[], buckets: number[]) =>
    new Histogram<L>({ name, help, labelNames, buckets, registers });

  const certificateExpiries = new Map<string, number>();
  new Gauge({
    name: MetricName.CertificateExpiry,
    help: 'Seconds until each certificate in use expires (negative once it has).',
    labelNames: ['certificate'],
    registers,
    // Summed over workers, seconds would add up: the aggregate is the soonest.
    aggregator: 'min',
    collect() {
      this.reset();
      for (const [certificate, notAfter] of certificateExpiries) this.set({ certificate }, Math.round((notAfter - Date.now()) / 1000));
    },
  });
  const phaseDuration = histogram(MetricName.PhaseDuration, 'Time spent in each phase before the splice.', ['phase'], PHASE_BUCKETS);
  for (const phase of Object.values(Phase)) phaseDuration.zero({ phase });
  const metrics: GatewayMetrics = {
    registry,
    connections: counter(MetricName.Connections, 'Client connections, by how they ended.', ['outcome']),
    activeSessions: new Gauge({ name: MetricName.ActiveSessions, help: 'Sessions past the splice.', registers }),
    phaseDuration,
    cacheRequests: counter(MetricName.CacheRequests, 'Route cache lookups, by tier and result.', ['tier', 'result']),
    controlPlaneRequestDuration: histogram(
      MetricName.ControlPlaneRequestDuration,
      'Control plane route requests, by HTTP status (error: no response).',
      ['status'],
      HTTP_BUCKETS,
    ),
    bytes: counter(MetricName.Bytes, 'Bytes spliced, by direction.', ['direction']),
    refusals: counter(MetricName.Refusals, 'Connections refused before the splice, by SQLSTATE.', ['sqlstate']),
    cancelRequests: counter(MetricName.CancelRequests, 'CancelRequests, by result.', ['result']),
    certificateExpiries,
    draining: new Gauge({ name: MetricName.Draining, help: '1 while the process drains its sessions after SIGTERM.', registers }),
    fleetLimitsLost: new Gauge({
      name: MetricName.FleetLimitsLost,
      help: "1 while Redis cannot be asked and this process enforces tenants' connection caps and rates alone.",
      registers,
    }),
  };
  zeroCounters(metrics);
  return metrics;
}

/** The status label of a control plane request: its HTTP status, or `error` without a response. */
export function controlPlaneStatus(statusCode: number | undefined): ControlPlaneStatus {
  return statusCode === undefined ? 'error' : `${statusCode}`;
}

/**
 * Exports every known label combination from the start, at zero: rate() and alarms then see a
 * series before its first event instead of an absent one. (Histograms are zeroed where made.)
 */
function zeroCounters(m: GatewayMetrics): void {
  for (const outcome of Object.values(ConnectionOutcome)) m.connections.inc({ outcome }, 0);
  for (const tier of Object.values(CacheTier)) {
    for (const result of Object.values(CacheResult)) m.cacheRequests.inc({ tier, result }, 0);
  }
  for (const direction of Object.values(Direction)) m.bytes.inc({ direction }, 0);
  for (const sqlstate of REFUSAL_SQLSTATES) m.refusals.inc({ sqlstate }, 0);
  for (const result of Object.values(CancelResult)) m.cancelRequests.inc({ result }, 0);
}
