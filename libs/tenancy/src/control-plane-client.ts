// The resolver's last tier: `GET {controlPlaneUrl}/v1/routes/:id` over a keep-alive undici Pool
// (route-cache.ts is the contract). 200 is a route (checked before it is trusted), 404 with the
// control plane's error body is "no such tenant", anything else is an error. Only transport
// failures are retried, with full-jitter backoff: a status is an answer, and retrying a 500 or a
// 401 would multiply the load on a control plane that is already unwell.
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { Pool, type Dispatcher } from 'undici';
import { fullJitterDelay, type BackoffPolicy } from './backoff.ts';
import { ControlPlaneError, ControlPlaneResponseError, ControlPlaneStatusError, ControlPlaneTransportError } from './errors.ts';
import type { Notifier } from './observer.ts';
import { foundAnswer, UNKNOWN_TENANT, type RouteAnswer } from './route-answer.ts';
import { TENANT_NOT_FOUND_CODE } from './route-cache.ts';
import { checkTenantRoute } from './route-validation.ts';
import { isTransportFailure } from './transport-failure.ts';

export interface ControlPlaneClientOptions {
  readonly url: string | URL;
  readonly token: string;
  /** One attempt, from sending the request to the end of the body. */
  readonly requestTimeoutMs: number;
  readonly connectTimeoutMs: number;
  /** Retries after the first attempt, for transport failures only. */
  readonly retries: number;
  readonly backoff: BackoffPolicy;
  readonly connections: number;
  readonly keepAliveTimeoutMs: number;
  readonly maxResponseBytes: number;
  readonly notifier: Notifier;
  /** [0, 1); for tests of the backoff. */
  readonly random?: () => number;
}

type Body = Awaited<ReturnType<Pool['request']>>['body'];

export class ControlPlaneClient {
  readonly #options: ControlPlaneClientOptions;
  readonly #pool: Pool;
  readonly #basePath: string;
  readonly #headers: Record<string, string>;

  constructor(options: ControlPlaneClientOptions) {
    const url = new URL(options.url);
    this.#options = options;
    this.#basePath = url.pathname.replace(/\/+$/, '');
    this.#headers = { authorization: `Bearer ${options.token}`, accept: 'application/json' };
    this.#pool = new Pool(url.origin, {
      connections: options.connections,
      connect: { timeout: options.connectTimeoutMs },
      headersTimeout: options.requestTimeoutMs,
      bodyTimeout: options.requestTimeoutMs,
      keepAliveTimeout: options.keepAliveTimeoutMs,
      maxResponseSize: options.maxResponseBytes,
    });
  }

  /**
   * The control plane's answer for one tenant, retrying transport failures.
   * @throws ControlPlaneError; the signal's reason once it aborts.
   */
  async fetchRoute(tenantId: string, signal: AbortSignal): Promise<RouteAnswer> {
    const { retries, backoff, random } = this.#options;
    for (let attempt = 0; ; attempt++) {
      try {
        return await this.#attempt(tenantId, attempt, signal);
      } catch (error) {
        if (signal.aborted || !(error instanceof ControlPlaneTransportError) || attempt >= retries) throw error;
      }
      await sleep(fullJitterDelay(attempt, backoff, random), undefined, { signal });
    }
  }

  /**
   * Asks the control plane to wake a sleeping tenant (POST /v1/routes/:id/wake); one attempt.
   * @returns `active` (nothing to wake) or `waking`; `unknown` for a tenant that does not exist
   * @throws ControlPlaneError; the signal's reason once it aborts
   */
  async requestWake(tenantId: string, signal: AbortSignal): Promise<'active' | 'waking' | 'unknown'> {
    const path = `${this.#basePath}/v1/routes/${encodeURIComponent(tenantId)}/wake`;
    const deadline = AbortSignal.any([signal, AbortSignal.timeout(this.#options.requestTimeoutMs)]);
    let response: Dispatcher.ResponseData;
    try {
      response = await this.#pool.request({ path, method: 'POST', headers: this.#headers, signal: deadline });
    } catch (error) {
      if (signal.aborted) throw signal.reason;
      throw classify(error, deadline);
    }
    const text = await response.body.text();
    if (response.statusCode === 404 && isUnknownTenantBody(text)) return 'unknown';
    if (response.statusCode !== 200 && response.statusCode !== 202) {
      let message = statusMessage(response.statusCode);
      try {
        message = String((JSON.parse(text) as { message?: unknown }).message ?? message);
      } catch {
        // Not the control plane's error body: the status says it.
      }
      throw new ControlPlaneStatusError(response.statusCode, message);
    }
    return response.statusCode === 200 ? 'active' : 'waking';
  }

  /** Closes every connection at once, ending requests in flight. */
  async close(): Promise<void> {
    await this.#pool.destroy();
  }

  async #attempt(tenantId: string, attempt: number, signal: AbortSignal): Promise<RouteAnswer> {
    const started = performance.now();
    const { requestTimeoutMs } = this.#options;
    const deadline = new AbortController();
    const timer = setTimeout(
      () => deadline.abort(new ControlPlaneTransportError(`no answer within ${requestTimeoutMs} ms`)),
      requestTimeoutMs,
    );
    const forward = () => deadline.abort(signal.reason);
    signal.addEventListener('abort', forward, { once: true });
    let status: number | 'error' = 'error';
    try {
      const path = `${this.#basePath}/v1/routes/${encodeURIComponent(tenantId)}`;
      const response = await this.#pool.request({ path, method: 'GET', headers: this.#headers, signal: deadline.signal });
      status = response.statusCode;
      const answer = await readAnswer(tenantId, response.statusCode, response.body);
      this.#report(tenantId, status, started, attempt);
      return answer;
    } catch (error) {
      if (signal.aborted) throw signal.reason;
      const failure = classify(error, deadline.signal);
      this.#report(tenantId, status, started, attempt, failure);
      throw failure;
    } finally {
      clearTimeout(timer);
      signal.removeEventListener('abort', forward);
    }
  }

  #report(tenantId: string, status: number | 'error', started: number, attempt: number, error?: Error): void {
    const durationSeconds = (performance.now() - started) / 1000;
    this.#options.notifier.controlPlaneRequest({ tenantId, status, durationSeconds, attempt, ...(error && { error }) });
  }
}

async function readAnswer(tenantId: string, statusCode: number, body: Body): Promise<RouteAnswer> {
  switch (statusCode) {
    case 200: {
      const checked = checkTenantRoute(parseJson(await body.text()), tenantId);
      if ('problem' in checked) throw new ControlPlaneResponseError(`route of "${tenantId}" is invalid: ${checked.problem}`);
      return foundAnswer(checked.route);
    }
    case 404:
      // A 404 without the control plane's error body comes from something else (a proxy, a load
      // balancer's default answer); taking it for "no such tenant" would refuse every tenant.
      if (isUnknownTenantBody(await body.text())) return UNKNOWN_TENANT;
      throw new ControlPlaneStatusError(404, 'answered 404 without the error body of an unknown tenant');
    default:
      await body.dump();
      throw new ControlPlaneStatusError(statusCode, statusMessage(statusCode));
  }
}

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch (error) {
    throw new ControlPlaneResponseError('answered with a body that is not JSON', { cause: error });
  }
}

/** The control plane's error shape, `{ code, message, details }`: a string `code` is enough. */
export function isUnknownTenantBody(text: string): boolean {
  try {
    const value: unknown = JSON.parse(text);
    return typeof value === 'object' && value !== null && (value as { code?: unknown }).code === TENANT_NOT_FOUND_CODE;
  } catch {
    return false;
  }
}

function statusMessage(statusCode: number): string {
  if (statusCode === 401 || statusCode === 403) return `refused the gateway token (HTTP ${statusCode})`;
  return `answered HTTP ${statusCode}`;
}

function classify(error: unknown, deadline: AbortSignal): ControlPlaneError {
  if (error instanceof ControlPlaneError) return error;
  if (deadline.aborted) {
    const reason = deadline.reason as ControlPlaneTransportError;
    return new ControlPlaneTransportError(reason.message, { cause: error });
  }
  const code = (error as { code?: unknown } | null)?.code;
  const what = typeof code === 'string' ? code : error instanceof Error ? error.name : 'unknown error';
  if (isTransportFailure(error)) return new ControlPlaneTransportError(`no answer (${what})`, { cause: error });
  if (code === 'UND_ERR_RES_EXCEEDED_MAX_SIZE')
    return new ControlPlaneResponseError('answered with a body over the size limit', { cause: error });
  return new ControlPlaneResponseError(`request failed (${what})`, { cause: error });
}
