// The primary process of a gateway with several workers (GATEWAY_WORKERS > 1). Workers share the
// listen port with reusePort, so the kernel spreads connections over them and the primary never
// touches a client's bytes. The primary forks and re-forks workers, relays signals (SIGTERM
// drains every worker, SIGHUP reloads each), brokers cancel-key lookups between workers, and
// serves the admin port with every worker's metrics summed.
// Map: docs/architecture.md, "Inside the gateway".
import cluster, { type Worker } from 'node:cluster';
import { once } from 'node:events';
import { AggregatorRegistry } from 'prom-client';
import type { AdminServer } from './admin.ts';
import { adminProxyProtocol, startAdminServer } from './admin.ts';
import { ClusterMessage, isClusterMessage, type ClusterReply, type ClusterRequest } from '../cancel/index.ts';
import type { GatewayConfig } from '../config/index.ts';
import type { Logger } from '../telemetry/index.ts';
import { DRAINING, type ReadinessMonitor, type ReadinessState } from './readiness.ts';
import { WorkerSessions } from './worker-sessions.ts';

/** A worker that dies is re-forked after this long, doubling up to the cap while they keep dying. */
const RESTART_DELAY_MS = 500;
const MAX_RESTART_DELAY_MS = 30_000;
/** A worker that lived this long resets the delay. */
const HEALTHY_AFTER_MS = 60_000;
/** Past the drain deadline, workers get this long to exit before SIGKILL. */
const EXIT_GRACE_MS = 5000;

interface PendingLookup {
  readonly from: Worker;
  readonly id: number;
  /** Workers asked that have not answered; one that exits counts as a no. */
  readonly waiting: Set<Worker>;
  readonly timer: NodeJS.Timeout;
}

/** The primary answers "unknown" after this long, whatever workers still owe an answer. */
const LOOKUP_TIMEOUT_MS = 900;

const STARTING: ReadinessState = { ready: false, reasons: [{ reason: 'no worker is listening yet' }] };

/** Runs the primary until every worker has exited after SIGTERM/SIGINT; `monitor` checks the control plane for /readyz. */
export async function runPrimary(config: GatewayConfig, logger: Logger, monitor: ReadinessMonitor): Promise<void> {
  const primary = new Primary(config, logger, monitor);
  await primary.start();
}

class Primary {
  readonly #config: GatewayConfig;
  readonly #log: Logger;
  readonly #monitor: ReadinessMonitor;
  readonly #aggregator = new AggregatorRegistry();
  readonly #lookups = new Map<number, PendingLookup>();
  readonly #listening = new Set<Worker>();
  readonly #sessions = new WorkerSessions(() => [...this.#listening]);
  #admin: AdminServer | undefined;
  #stopping = false;
  /** Until a worker has listened once, a worker that exits is a failed start, not a crash. */
  #everListening = false;
  #restartDelayMs = RESTART_DELAY_MS;
  #nextLookup = 0;

  constructor(config: GatewayConfig, logger: Logger, monitor: ReadinessMonitor) {
    this.#config = config;
    this.#log = logger;
    this.#monitor = monitor;
  }

  async start(): Promise<void> {
    // Signals first, the admin port next: a failure there leaves no worker behind.
    process.on('SIGHUP', () => this.#signalWorkers('SIGHUP'));
    process.once('SIGTERM', () => void this.#stop('SIGTERM'));
    process.once('SIGINT', () => void this.#stop('SIGINT'));
    if (this.#config.adminListen !== undefined) {
      this.#admin = await startAdminServer({
        listen: this.#config.adminListen,
        // Every worker's registry, summed (gauges too: active sessions add up).
        metrics: { contentType: this.#aggregator.contentType, metrics: () => this.#aggregator.clusterMetrics() },
        readiness: () => (this.#stopping ? DRAINING : this.#listening.size === 0 ? STARTING : this.#monitor.state),
        logger: this.#log,
        proxyProtocol: adminProxyProtocol(this.#config.proxyProtocol),
        sessions: this.#sessions,
        tokens: this.#config.adminTokens,
      });
    }
    cluster.on('message', this.#onMessage);
    cluster.on('exit', this.#onExit);
    for (let i = 0; i < this.#config.workers; i++) startedAt.set(cluster.fork(), Date.now());
    this.#log.info({ workers: this.#config.workers, admin: this.#admin?.address }, 'gateway primary started');
    void this.#monitor.start();
  }

  /** SIGHUP only to workers that listen: one still starting has no handler yet and would die of it. */
  #signalWorkers(signal: NodeJS.Signals): void {
    const targets = signal === 'SIGHUP' ? [...this.#listening] : Object.values(cluster.workers ?? {});
    for (const worker of targets) worker?.process.kill(signal);
  }

  async #stop(signal: NodeJS.Signals): Promise<void> {
    if (this.#stopping) return;
    this.#stopping = true;
    this.#log.info({ signal }, 'draining workers');
    const workers = Object.values(cluster.workers ?? {}).filter((w): w is Worker => w !== undefined);
    const exited = Promise.all(workers.map((w) => (w.isDead() ? undefined : once(w, 'exit'))));
    // A terminal's Ctrl-C reaches every worker already; a second signal would not drain twice.
    this.#signalWorkers('SIGTERM');
    const deadline = setTimeout(() => this.#signalWorkers('SIGKILL'), this.#config.drainSeconds * 1000 + EXIT_GRACE_MS);
    await exited;
    clearTimeout(deadline);
    await Promise.all([this.#admin?.close(), this.#monitor.close()]);
    this.#log.info('stopped');
    this.#log.flush();
  }

  readonly #onExit = (worker: Worker, code: number | null, signal: string | null): void => {
    this.#listening.delete(worker);
    this.#abandonLookups(worker);
    if (this.#stopping) return;
    if (!this.#everListening) {
      // Every worker runs the same configuration: one that cannot start, none can.
      this.#log.fatal({ pid: worker.process.pid, code, signal }, 'a worker could not start; stopping the gateway');
      process.exitCode = 1;
      void this.#stop('SIGTERM');
      return;
    }
    const lived = Date.now() - (startedAt.get(worker) ?? Date.now());
    if (lived > HEALTHY_AFTER_MS) this.#restartDelayMs = RESTART_DELAY_MS;
    this.#log.error({ pid: worker.process.pid, code, signal, restartInMs: this.#restartDelayMs }, 'worker exited; starting another');
    setTimeout(() => {
      if (!this.#stopping) startedAt.set(cluster.fork(), Date.now());
    }, this.#restartDelayMs).unref();
    this.#restartDelayMs = Math.min(this.#restartDelayMs * 2, MAX_RESTART_DELAY_MS);
  };

  readonly #onMessage = (worker: Worker, message: unknown): void => {
    if (this.#sessions.onMessage(message)) return;
    if (isClusterMessage(message, ClusterMessage.Listening)) {
      this.#listening.add(worker);
      this.#everListening = true;
    } else if (isClusterMessage(message, ClusterMessage.Lookup)) this.#lookup(worker, message);
    else if (isClusterMessage(message, ClusterMessage.Found)) this.#found(worker, message);
  };

  /** Asks every other live worker; the first entry found answers, or null when all said no. */
  /** Asks every other listening worker (only those hold sessions); the first entry found answers. */
  #lookup(from: Worker, request: ClusterRequest): void {
    const others = [...this.#listening].filter((w) => w !== from && w.isConnected());
    if (others.length === 0) return this.#reply(from, request.id, null);
    const key = this.#nextLookup++;
    const timer = setTimeout(() => this.#settle(key, null), LOOKUP_TIMEOUT_MS).unref();
    this.#lookups.set(key, { from, id: request.id, waiting: new Set(others), timer });
    const find: ClusterRequest = { type: ClusterMessage.Find, id: key, processId: request.processId, secretKey: request.secretKey };
    for (const worker of others) worker.send(find);
  }

  #found(worker: Worker, message: ClusterReply): void {
    const pending = this.#lookups.get(message.id);
    if (pending === undefined) return; // answered already
    pending.waiting.delete(worker);
    if (message.entry !== null || pending.waiting.size === 0) this.#settle(message.id, message.entry);
  }

  #settle(key: number, entry: ClusterReply['entry']): void {
    const pending = this.#lookups.get(key);
    if (pending === undefined) return;
    this.#lookups.delete(key);
    clearTimeout(pending.timer);
    this.#reply(pending.from, pending.id, entry);
  }

  /** A dead worker's own lookups go unanswered (it is gone); where it owed an answer, it counts as a no. */
  #abandonLookups(dead: Worker): void {
    for (const [key, pending] of this.#lookups) {
      if (pending.from === dead) {
        clearTimeout(pending.timer);
        this.#lookups.delete(key);
      } else if (pending.waiting.delete(dead) && pending.waiting.size === 0) {
        this.#settle(key, null);
      }
    }
  }

  #reply(to: Worker, id: number, entry: ClusterReply['entry']): void {
    if (to.isConnected()) to.send({ type: ClusterMessage.Result, id, entry } satisfies ClusterReply);
  }
}

const startedAt = new WeakMap<Worker, number>();
