// Ending a tenant's sessions on every gateway (docs/architecture.md, "Redis"): the control plane
// publishes `{tenant, requestId}` on TERMINATE_CHANNEL; each gateway process subscribed ends that
// tenant's sessions and pushes `{gateway, ended}` onto the request's acknowledgement list, which
// the control plane reads to answer how many gateways acted and how many sessions they ended.

export const TERMINATE_CHANNEL = 'tenantgate:terminate';
const ACKS_PREFIX = 'tenantgate:terminate-acks:';
/** How long an acknowledgement list outlives its request. */
export const TERMINATE_ACKS_TTL_MS = 60_000;

export interface TerminateRequest {
  readonly tenant: string;
  readonly requestId: string;
}

export interface TerminateAck {
  /** The gateway process: host name and pid. */
  readonly gateway: string;
  readonly ended: number;
}

export function terminateAcksKey(requestId: string): string {
  return ACKS_PREFIX + requestId;
}

/** The request from a channel message; null when it is not one (a foreign publisher). */
export function decodeTerminateRequest(raw: string): TerminateRequest | null {
  const value = parseObject(raw);
  if (value === null || typeof value.tenant !== 'string' || typeof value.requestId !== 'string') return null;
  if (!/^[a-z0-9-]{1,63}$/.test(value.tenant) || !/^[A-Za-z0-9-]{1,64}$/.test(value.requestId)) return null;
  return { tenant: value.tenant, requestId: value.requestId };
}

export function decodeTerminateAck(raw: string): TerminateAck | null {
  const value = parseObject(raw);
  if (value === null || typeof value.gateway !== 'string' || !Number.isSafeInteger(value.ended)) return null;
  return { gateway: value.gateway, ended: value.ended as number };
}

function parseObject(raw: string): Record<string, unknown> | null {
  try {
    const value: unknown = JSON.parse(raw);
    return typeof value === 'object' && value !== null && !Array.isArray(value) ? (value as Record<string, unknown>) : null;
  } catch {
    return null;
  }
}
