// Does the control plane take this gateway's token? Asked at start and then periodically by the
// gateway's readiness, so that a wrong token or URL is found before the first client, not by it.
// The probe is one `GET /v1/routes/:id` for an id no tenant is expected to have, outside the
// resolver (no cache, no breaker, no retry): a 404 with the control plane's unknown-tenant body
// (or a 200, should a tenant have that id) says the token is accepted; 401 that it is not. The
// control plane answers 403 only where a gateway token may not go, so a 403, like a 404 without
// that body, says the URL does not lead to the routes API.
import { Pool } from 'undici';
import { isUnknownTenantBody } from './control-plane-client.ts';
import { isTransportFailure } from './transport-failure.ts';

/** The tenant id the probe asks for. */
export const PROBE_TENANT_ID = 'tenantgate-readiness-probe';

export type ControlPlaneAccess =
  | { readonly kind: 'accepted' }
  /** The control plane does not know the token (401). */
  | { readonly kind: 'refused'; readonly status: number }
  /** Something answered that is not the control plane's routes API (a wrong URL or path). */
  | { readonly kind: 'not-control-plane'; readonly status: number }
  /** No answer, or a 5xx: the control plane is down or unwell. */
  | { readonly kind: 'unreachable'; readonly reason: string };

export interface ControlPlaneProbeOptions {
  readonly url: string | URL;
  readonly token: string;
  readonly timeoutMs: number;
}

export class ControlPlaneProbe {
  readonly #pool: Pool;
  readonly #path: string;
  readonly #headers: Record<string, string>;
  readonly #timeoutMs: number;

  constructor(options: ControlPlaneProbeOptions) {
    const url = new URL(options.url);
    this.#path = `${url.pathname.replace(/\/+$/, '')}/v1/routes/${PROBE_TENANT_ID}`;
    this.#headers = { authorization: `Bearer ${options.token}`, accept: 'application/json' };
    this.#timeoutMs = options.timeoutMs;
    this.#pool = new Pool(url.origin, {
      connections: 1,
      connect: { timeout: options.timeoutMs },
      headersTimeout: options.timeoutMs,
      bodyTimeout: options.timeoutMs,
      maxResponseSize: 64 * 1024,
    });
  }

  /** Never throws: every outcome is an answer. */
  async check(): Promise<ControlPlaneAccess> {
    try {
      const response = await this.#pool.request({
        path: this.#path,
        method: 'GET',
        headers: this.#headers,
        signal: AbortSignal.timeout(this.#timeoutMs),
      });
      const body = await response.body.text();
      const status = response.statusCode;
      if (status === 401) return { kind: 'refused', status };
      if (status === 200 || (status === 404 && isUnknownTenantBody(body))) return { kind: 'accepted' };
      if (status >= 500) return { kind: 'unreachable', reason: `the control plane answered HTTP ${status}` };
      return { kind: 'not-control-plane', status };
    } catch (error) {
      const code = (error as { code?: unknown } | null)?.code;
      const what = typeof code === 'string' ? code : error instanceof Error ? error.name : 'unknown error';
      return { kind: 'unreachable', reason: isTransportFailure(error) ? `no answer (${what})` : `request failed (${what})` };
    }
  }

  async close(): Promise<void> {
    await this.#pool.destroy();
  }
}
