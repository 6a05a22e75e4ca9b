// Readiness that tells the truth (docs/architecture.md, "Drain and shutdown"): at start and then
// every READINESS_INTERVAL_MS, the gateway asks the control plane whether it takes its token
// (ControlPlaneProbe) and, with REDIS_URL, pings Redis. /readyz fails, with the reasons, while
// the control plane refuses the token, while its URL leads somewhere else, or while no tenant
// source answers at all (the control plane down and Redis down or not configured). Each change
// is logged once, naming the variable to fix. With a tenants file there is nothing to ask.
import { ControlPlaneProbe, type ControlPlaneAccess } from '@tenantgate/tenancy';
import type { Redis } from 'ioredis';
import type { GatewayConfig, VariableName } from '../config/index.ts';
import type { Logger } from '../telemetry/index.ts';

export const READINESS_INTERVAL_MS = 10_000;
/** One probe of the control plane or Redis; slower counts as no answer. */
export const READINESS_PROBE_TIMEOUT_MS = 2_000;

/** Why the gateway is not ready, for /readyz and the log. */
export interface NotReadyReason {
  readonly reason: string;
  /** The variable to fix, when the cause is the gateway's configuration. */
  readonly variable?: VariableName;
}

export interface ReadinessState {
  readonly ready: boolean;
  readonly reasons: readonly NotReadyReason[];
}

export const READY: ReadinessState = { ready: true, reasons: [] };
export const DRAINING: ReadinessState = { ready: false, reasons: [{ reason: 'the gateway is draining' }] };
const FIRST_CHECK: ReadinessState = { ready: false, reasons: [{ reason: 'the first check of the control plane has not finished' }] };

export interface ReadinessMonitorOptions {
  readonly probe?: Pick<ControlPlaneProbe, 'check' | 'close'>;
  readonly redis?: Pick<Redis, 'ping' | 'disconnect'>;
  readonly logger: Logger;
  readonly intervalMs?: number;
}

export class ReadinessMonitor {
  readonly #options: ReadinessMonitorOptions;
  #state: ReadinessState;
  #timer: NodeJS.Timeout | undefined;

  constructor(options: ReadinessMonitorOptions) {
    this.#options = options;
    this.#state = options.probe === undefined ? READY : FIRST_CHECK;
  }

  get state(): ReadinessState {
    return this.#state;
  }

  /** The first check, awaited (until it ends, not ready); then one every interval. */
  async start(): Promise<void> {
    await this.check();
    this.#timer = setInterval(() => void this.check(), this.#options.intervalMs ?? READINESS_INTERVAL_MS);
    this.#timer.unref();
  }

  async check(): Promise<ReadinessState> {
    const { probe, redis } = this.#options;
    if (probe === undefined) return this.#state;
    const [access, redisUp] = await Promise.all([probe.check(), redis === undefined ? undefined : ping(redis)]);
    this.#update(reasonsOf(access, redisUp));
    return this.#state;
  }

  async close(): Promise<void> {
    clearInterval(this.#timer);
    this.#options.redis?.disconnect();
    await this.#options.probe?.close();
  }

  #update(reasons: NotReadyReason[]): void {
    const first = this.#state === FIRST_CHECK;
    const before = new Set(first ? [] : this.#state.reasons.map((r) => r.reason));
    this.#state = reasons.length === 0 ? READY : { ready: false, reasons };
    const { logger } = this.#options;
    for (const reason of reasons) {
      if (!before.has(reason.reason)) logger.error({ variable: reason.variable, reason: reason.reason }, `not ready: ${reason.reason}`);
    }
    if (reasons.length === 0 && (first || before.size > 0)) logger.info('ready: the control plane takes the gateway token');
  }
}

/** The monitor for this configuration: the control plane's probe and Redis when they are used. */
export function readinessMonitor(config: GatewayConfig, logger: Logger, connectRedis: (url: string) => Redis): ReadinessMonitor {
  const source = config.tenantSource;
  if (source.kind !== 'control-plane') return new ReadinessMonitor({ logger });
  return new ReadinessMonitor({
    logger,
    probe: new ControlPlaneProbe({ url: source.url, token: source.token, timeoutMs: READINESS_PROBE_TIMEOUT_MS }),
    ...(config.redisUrl === undefined ? {} : { redis: connectRedis(config.redisUrl) }),
  });
}

function reasonsOf(access: ControlPlaneAccess, redisUp: boolean | undefined): NotReadyReason[] {
  switch (access.kind) {
    case 'accepted':
      return [];
    case 'refused':
      return [
        {
          variable: 'GATEWAY_CONTROL_PLANE_TOKEN',
          reason: `the control plane refuses GATEWAY_CONTROL_PLANE_TOKEN (HTTP ${access.status})`,
        },
      ];
    case 'not-control-plane':
      return [
        {
          variable: 'GATEWAY_CONTROL_PLANE_URL',
          reason: `GATEWAY_CONTROL_PLANE_URL does not lead to the control plane's routes API (HTTP ${access.status})`,
        },
      ];
    case 'unreachable':
      // Redis still holds the fleet's cached routes: the gateway serves them while the control plane is away.
      if (redisUp === true) return [];
      return [
        {
          reason: `no tenant source answers: the control plane (${access.reason}) ${redisUp === undefined ? 'and no REDIS_URL' : 'nor Redis'}`,
        },
      ];
  }
}

async function ping(redis: Pick<Redis, 'ping'>): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<false>((resolve) => (timer = setTimeout(resolve, READINESS_PROBE_TIMEOUT_MS, false)));
  try {
    return await Promise.race([redis.ping().then(() => true), late]);
  } catch {
    return false;
  } finally {
    clearTimeout(timer);
  }
}
