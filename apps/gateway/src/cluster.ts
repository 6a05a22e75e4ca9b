// The primary process of a gateway with several workers (GATEWAY_WORKERS > 1). Workers share the
// listen port with reusePort, so the kernel spreads connections over them and the primary never
// touches a client's bytes. The primary forks and re-forks workers, relays signals (SIGTERM
// drains every worker, SIGHUP reloads each), brokers cancel-key lookups between workers, and
// serves the admin port with every worker's metrics summed.
import cluster, { type Worker } from 'node:cluster';
import { once } from 'node:events';
import { AggregatorRegistry } from 'prom-client';
import type { AdminServer } from './admin.ts';
import { adminProxyProtocol, startAdminServer } from './admin.ts';
import { ClusterMessage, isClusterMessage, type ClusterReply, type ClusterRequest } from './cluster-cancel-store.ts';
import type { GatewayConfig } from './config.ts';
import type { Logger } from './logger.ts';

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
  waiting: number;
}

/** Runs the primary until every worker has exited after SIGTERM/SIGINT. */
export async function runPrimary(config: GatewayConfig, logger: Logger): Promise<void> {
  const primary = new Primary(config, logger);
  await primary.start();
}

class Primary {
  readonly #config: GatewayConfig;
  readonly #log: Logger;
  readonly #aggregator = new AggregatorRegistry();
  readonly #lookups = new Map<number, PendingLookup>();
  readonly #listening = new Set<Worker>();
  #admin: AdminServer | undefined;
  #stopping = false;
  #restartDelayMs = RESTART_DELAY_MS;
  #nextLookup = 0;

  constructor(config: GatewayConfig, logger: Logger) {
    this.#config = config;
    this.#log = logger;
  }

  async start(): Promise<void> {
    cluster.on('message', this.#onMessage);
    cluster.on('exit', this.#onExit);
    for (let i = 0; i < this.#config.workers; i++) startedAt.set(cluster.fork(), Date.now());
    if (this.#config.adminListen !== undefined) {
      this.#admin = await startAdminServer({
        listen: this.#config.adminListen,
        // Every worker's registry, summed (gauges too: active sessions add up).
        metrics: { contentType: this.#aggregator.contentType, metrics: () => this.#aggregator.clusterMetrics() },
        readiness: () => !this.#stopping && this.#listening.size > 0,
        logger: this.#log,
        proxyProtocol: adminProxyProtocol(this.#config.proxyProtocol),
      });
    }
    this.#log.info({ workers: this.#config.workers, admin: this.#admin?.address }, 'gateway primary started');
    process.on('SIGHUP', () => this.#signalWorkers('SIGHUP'));
    process.once('SIGTERM', () => void this.#stop('SIGTERM'));
    process.once('SIGINT', () => void this.#stop('SIGINT'));
  }

  #signalWorkers(signal: NodeJS.Signals): void {
    for (const worker of Object.values(cluster.workers ?? {})) worker?.process.kill(signal);
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
    await this.#admin?.close();
    this.#log.info('stopped');
    this.#log.flush();
  }

  readonly #onExit = (worker: Worker, code: number | null, signal: string | null): void => {
    this.#listening.delete(worker);
    this.#abandonLookups(worker);
    if (this.#stopping) return;
    const lived = Date.now() - (startedAt.get(worker) ?? Date.now());
    if (lived > HEALTHY_AFTER_MS) this.#restartDelayMs = RESTART_DELAY_MS;
    this.#log.error({ pid: worker.process.pid, code, signal, restartInMs: this.#restartDelayMs }, 'worker exited; starting another');
    setTimeout(() => {
      if (!this.#stopping) startedAt.set(cluster.fork(), Date.now());
    }, this.#restartDelayMs).unref();
    this.#restartDelayMs = Math.min(this.#restartDelayMs * 2, MAX_RESTART_DELAY_MS);
  };

  readonly #onMessage = (worker: Worker, message: unknown): void => {
    if (isClusterMessage(message, ClusterMessage.Listening)) this.#listening.add(worker);
    else if (isClusterMessage(message, ClusterMessage.Lookup)) this.#lookup(worker, message);
    else if (isClusterMessage(message, ClusterMessage.Found)) this.#found(message);
  };

  /** Asks every other live worker; the first entry found answers, or null when all said no. */
  #lookup(from: Worker, request: ClusterRequest): void {
    const others = Object.values(cluster.workers ?? {}).filter((w): w is Worker => w !== undefined && w !== from && w.isConnected());
    if (others.length === 0) return this.#reply(from, request.id, null);
    const key = this.#nextLookup++;
    this.#lookups.set(key, { from, id: request.id, waiting: others.length });
    const find: ClusterRequest = { type: ClusterMessage.Find, id: key, processId: request.processId, secretKey: request.secretKey };
    for (const worker of others) worker.send(find);
  }

  #found(message: ClusterReply): void {
    const pending = this.#lookups.get(message.id);
    if (pending === undefined) return; // answered already
    pending.waiting--;
    if (message.entry !== null || pending.waiting === 0) {
      this.#lookups.delete(message.id);
      this.#reply(pending.from, pending.id, message.entry);
    }
  }

  /** A worker that died cannot answer: count it as a no. Its own lookups go unanswered (it is gone). */
  #abandonLookups(dead: Worker): void {
    for (const [key, pending] of this.#lookups) {
      if (pending.from === dead) this.#lookups.delete(key);
    }
  }

  #reply(to: Worker, id: number, entry: ClusterReply['entry']): void {
    if (to.isConnected()) to.send({ type: ClusterMessage.Result, id, entry } satisfies ClusterReply);
  }
}

const startedAt = new WeakMap<Worker, number>();
