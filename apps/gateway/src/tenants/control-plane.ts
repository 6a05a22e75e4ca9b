// The tenant source of a fleet (docs/architecture.md, step 6): the resolver of libs/tenancy (memory, then
// Redis shared by every gateway, then the control plane over HTTP) behind the gateway's
// TenantDirectory interface, with its events turned into the gateway's metrics and log lines.
import {
  ControlPlaneError,
  TenantDirectoryUnavailableError,
  createTenantResolver,
  type TenantResolver,
  type TenantResolverObserver,
  type TenantResolverOptions,
} from '@tenantgate/tenancy';
import type { Logger } from '../telemetry/index.ts';
import type { VariableName } from '../config/index.ts';
import { controlPlaneStatus, type GatewayMetrics } from '../telemetry/index.ts';
import { type TenantLookup, type TenantDirectory } from './directory.ts';
import { TenantDirectoryUnreachableError } from '../errors.ts';
import { TenantWaker } from './wake.ts';

export interface ControlPlaneDirectoryOptions {
  readonly controlPlaneUrl: string;
  readonly controlPlaneToken: string;
  /** Without it: memory, then the control plane. */
  readonly redisUrl?: string;
  readonly metrics: Pick<GatewayMetrics, 'cacheRequests' | 'controlPlaneRequestDuration'>;
  readonly logger: Logger;
  /** TTLs, timeouts and retries; the resolver's defaults otherwise. */
  readonly tuning?: Partial<Omit<TenantResolverOptions, 'controlPlaneUrl' | 'controlPlaneToken' | 'redisUrl' | 'observer'>>;
}

const REFUSALS: ReadonlyMap<number, VariableName> = new Map([
  [401, 'GATEWAY_CONTROL_PLANE_TOKEN'],
  [403, 'GATEWAY_CONTROL_PLANE_URL'],
]);

export class ControlPlaneDirectory implements TenantDirectory {
  readonly #resolver: TenantResolver;
  /**
   * Set while the control plane's last answer refused the gateway's requests: 401, the token; 403
   * (which it answers only where a gateway token may not go), the URL's path. Lookups that fail
   * meanwhile (the circuit breaker open after those refusals included) are a configuration fault,
   * not an outage.
   */
  #misconfigured: VariableName | undefined;
  readonly #waker: TenantWaker;

  constructor(options: ControlPlaneDirectoryOptions) {
    this.#resolver = createTenantResolver({
      ...options.tuning,
      controlPlaneUrl: options.controlPlaneUrl,
      controlPlaneToken: options.controlPlaneToken,
      ...(options.redisUrl === undefined ? {} : { redisUrl: options.redisUrl }),
      observer: observer(
        options.metrics,
        options.logger,
        (status) => {
          // No answer at all (a transport failure) says nothing of the token: an outage, not a misconfiguration.
          this.#misconfigured = status === 'error' ? undefined : REFUSALS.get(status);
        },
        (tenantId) => this.#waker.changed(tenantId),
      ),
    });
    this.#waker = new TenantWaker(this.#resolver, (id, signal) => this.resolve(id, signal), { channel: options.redisUrl !== undefined });
  }

  async wake(tenantId: string, signal: AbortSignal): Promise<TenantLookup> {
    try {
      return await this.#waker.wake(tenantId, signal);
    } catch (error) {
      if (error instanceof ControlPlaneError) {
        throw new TenantDirectoryUnreachableError(`the wake was not taken: ${error.message}`, {
          cause: error,
          misconfigured: this.#misconfigured,
        });
      }
      throw error;
    }
  }

  /** Waits for Redis and the invalidation subscription (at once without Redis), or the signal. */
  ready(signal?: AbortSignal): Promise<void> {
    return this.#resolver.ready(signal);
  }

  async resolve(tenantId: string, signal?: AbortSignal): Promise<TenantLookup> {
    try {
      const resolution = await this.#resolver.resolve(tenantId, signal);
      if (resolution.kind === 'unknown') return { kind: 'unknown' };
      return { kind: 'found', tenant: resolution.route, version: resolution.route.version };
    } catch (error) {
      if (error instanceof TenantDirectoryUnavailableError) {
        throw new TenantDirectoryUnreachableError(describe(error), { cause: error, misconfigured: this.#misconfigured });
      }
      throw error;
    }
  }

  isCached(tenantId: string): boolean {
    return this.#resolver.isCached(tenantId);
  }

  /** The resolver's memory tier now: routes held and their weight, within its bounds. */
  get memory(): { readonly entries: number; readonly bytes: number } {
    return this.#resolver.memory;
  }

  close(): Promise<void> {
    return this.#resolver.close();
  }
}

function describe(error: Error): string {
  const cause = error.cause instanceof Error ? `: ${error.cause.message}` : '';
  return `${error.message}${cause}`;
}

function observer(
  metrics: ControlPlaneDirectoryOptions['metrics'],
  log: Logger,
  onStatus: (status: number | 'error') => void,
  onInvalidation: (tenantId: string | null) => void,
): TenantResolverObserver {
  return {
    cacheRequest(tier, result) {
      metrics.cacheRequests.inc({ tier, result });
    },
    controlPlaneRequest(event) {
      const status = event.status === 'error' ? controlPlaneStatus(undefined) : controlPlaneStatus(event.status);
      metrics.controlPlaneRequestDuration.observe({ status }, event.durationSeconds);
      onStatus(event.status);
      if (event.error !== undefined) {
        log.warn(
          { tenant: event.tenantId, status: event.status, attempt: event.attempt, err: event.error },
          'control plane request failed',
        );
      }
    },
    redisConnection(event) {
      const entry = { role: event.role, state: event.state, err: event.error };
      if (event.state === 'down') log.warn(entry, 'redis connection lost; resolving through the control plane meanwhile');
      else log.info(entry, 'redis connection');
    },
    redisError(event) {
      log.debug({ operation: event.operation, tenant: event.tenantId, err: event.error }, 'redis command failed');
    },
    staleServed(event) {
      log.warn({ tenant: event.tenantId, version: event.version, ageSeconds: event.ageSeconds, err: event.error }, 'served a stale route');
    },
    invalidation(event) {
      log.debug({ tenant: event.tenantId, version: event.version }, 'route invalidated');
      onInvalidation(event.tenantId);
    },
  };
}
