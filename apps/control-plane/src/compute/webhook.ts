// The compute webhook: the control plane POSTs `{"tenant": "<id>", "action": "wake" | "suspend"}`
// to CONTROL_PLANE_COMPUTE_WEBHOOK, signed with CONTROL_PLANE_COMPUTE_WEBHOOK_SECRET, and the
// platform starts or stops the tenant's compute, then sets its status (PATCH /v1/tenants/:id).
// A 2xx answer means the platform took the request; anything else (or no answer in 10 s) is a
// failure the job retries with backoff.
//
// Signature: `Tenantgate-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>">`. The
// timestamp is inside what is signed, so a receiver that refuses old timestamps refuses replays.
import { createHmac, timingSafeEqual } from 'node:crypto';
import { ComputeFailedError } from '../errors.ts';
import type { ComputeAction, ComputeDriver, ComputeResult, ComputeTarget } from './driver.ts';

export const SIGNATURE_HEADER = 'tenantgate-signature';
const TIMEOUT_MS = 10_000;

export function computeSignature(secret: string, timestamp: number, body: string): string {
  return createHmac('sha256', secret).update(`${timestamp}.${body}`).digest('hex');
}

/**
 * Checks a signature header against the body, as a receiver should: the HMAC in constant time,
 * and a timestamp within `toleranceSeconds` of now.
 */
export function verifyComputeSignature(secret: string, header: string, body: string, toleranceSeconds = 300, now = Date.now()): boolean {
  const parts = new Map(header.split(',').map((part) => part.split('=', 2) as [string, string]));
  const timestamp = Number(parts.get('t'));
  const given = Buffer.from(parts.get('v1') ?? '', 'hex');
  if (!Number.isInteger(timestamp) || Math.abs(now / 1000 - timestamp) > toleranceSeconds) return false;
  const expected = Buffer.from(computeSignature(secret, timestamp, body), 'hex');
  return given.length === expected.length && timingSafeEqual(given, expected);
}

export class WebhookComputeDriver implements ComputeDriver {
  readonly name = 'webhook';
  readonly #url: string;
  readonly #secret: string;

  constructor(url: string, secret: string) {
    this.#url = url;
    this.#secret = secret;
  }

  async run(action: ComputeAction, target: ComputeTarget): Promise<ComputeResult> {
    const body = JSON.stringify({ tenant: target.tenant, action });
    const timestamp = Math.floor(Date.now() / 1000);
    let response: Response;
    try {
      response = await fetch(this.#url, {
        method: 'POST',
        headers: {
          'content-type': 'application/json',
          [SIGNATURE_HEADER]: `t=${timestamp},v1=${computeSignature(this.#secret, timestamp, body)}`,
        },
        body,
        redirect: 'error',
        signal: AbortSignal.timeout(TIMEOUT_MS),
      });
    } catch (error) {
      const cause = (error as Error).cause as Error | undefined;
      throw new ComputeFailedError(
        target.tenant,
        verb(action),
        `the webhook did not answer (${cause?.message ?? (error as Error).message})`,
      );
    }
    await response.body?.cancel();
    if (!response.ok) throw new ComputeFailedError(target.tenant, verb(action), `the webhook answered ${response.status}`);
    return 'accepted';
  }
}

export function verb(action: ComputeAction): string {
  return action === 'wake' ? 'woken' : 'suspended';
}
