// Admission (docs/architecture.md, step 7): may this client open a session of this tenant now?
// Before authentication, check() looks at the tenant's status and the client's address, which
// cost nobody anything. The tenant's capacity (its connect rate and connection cap) is spent by
// admit() only once the client has authenticated, so clients that never log in cannot lock a
// tenant out. Until then a client may have the backend opened early only within a small
// per-tenant budget (earlyOpen), so they cannot make the backend fork either.
// With fleet limits (Redis), admit() counts here first, then asks the fleet, whose view is the
// one that holds across gateways; when Redis cannot be asked, the count here decides alone.
import type { BlockList } from 'node:net';
import { cidrAllowList, isAddressAllowed, type Tenant } from '@tenantgate/tenancy';
import { Refusal } from '../errors.ts';
import { SqlState } from '@tenantgate/wire';
import { fullBucket, isFull, takeToken, type BucketLimit, type FleetLimits, type TokenBucket } from '../limits/index.ts';

/** A ticket for one admitted session; release it exactly once when the session ends. */
export interface AdmissionTicket {
  release(): void;
}

interface TenantCounters {
  active: number;
  /** Backends opened for clients still authenticating. */
  earlyOpens: number;
  /** Connects per second; its size and rate are the tenant's connectsPerSecond. */
  readonly connects: TokenBucket;
  connectLimit: BucketLimit;
  /** The allow-list is rebuilt only when the tenant's list changes. */
  cidrs: readonly string[];
  allowList: BlockList;
}

/**
 * A tenant's bucket holds one second of its rate (size = connectsPerSecond), so one second after
 * its last session or early open ended it is full again: its counters then hold nothing a new
 * entry would not start with, and are forgotten.
 */
const IDLE_FORGET_MS = 1_000;

/** A backend opened before its client authenticated; release it once the client has (or has failed). */
export interface EarlyOpenPass {
  release(): void;
}

/**
 * Backends each tenant may have opened for clients that have not authenticated yet. Opening
 * during authentication saves a real client the backend's TCP and TLS round trips; a client
 * beyond the budget has its backend opened once it has authenticated.
 */
export const EARLY_OPENS_PER_TENANT = 4;

export interface AdmissionOptions {
  /** Milliseconds since some origin; injectable so tests need no clock. */
  readonly now?: () => number;
  /** Default EARLY_OPENS_PER_TENANT. */
  readonly earlyOpensPerTenant?: number;
  /** The limits across every gateway of the fleet; without it each process enforces them alone. */
  readonly fleet?: FleetLimits;
}

export class Admission {
  readonly #tenants = new Map<string, TenantCounters>();
  /**
   * Tenants with nothing open, oldest first, with when they became idle: forgotten from the head
   * once idle for IDLE_FORGET_MS, so the map holds the tenants in use and those of the last
   * second, at a constant cost per lookup however many tenants there are.
   */
  readonly #idle = new Map<string, number>();
  readonly #now: () => number;
  readonly #earlyOpens: number;
  readonly #fleet: FleetLimits | undefined;

  constructor(options: AdmissionOptions = {}) {
    this.#now = options.now ?? (() => performance.now());
    this.#earlyOpens = options.earlyOpensPerTenant ?? EARLY_OPENS_PER_TENANT;
    this.#fleet = options.fleet;
  }

  /** Before authentication: the tenant's status and allow-list; throws a Refusal. */
  check(tenant: Tenant, clientAddress: string): void {
    checkStatus(tenant);
    const counters = this.#countersOf(tenant);
    if (!isAddressAllowed(counters.allowList, clientAddress)) {
      throw new Refusal(SqlState.InvalidAuthorization, `connections from this address are not allowed for tenant "${tenant.id}"`, {
        hint: "Ask the tenant's administrator to add your address to the allowed list.",
      });
    }
  }

  /** A pass to open the backend before the client has authenticated, or undefined when the tenant's budget is spent. */
  earlyOpen(tenant: Tenant): EarlyOpenPass | undefined {
    const counters = this.#countersOf(tenant);
    if (counters.earlyOpens >= this.#earlyOpens) return undefined;
    counters.earlyOpens++;
    this.#idle.delete(tenant.id);
    return once(() => {
      counters.earlyOpens--;
      this.#settle(tenant.id, counters);
    });
  }

  /**
   * After authentication: a connect-rate token and a slot of the connection cap, in this process
   * and then across the fleet, or a Refusal. Counting here first keeps this process's count true
   * for the times Redis is away; a refusal here is one the fleet would give too.
   */
  async admit(tenant: Tenant): Promise<AdmissionTicket> {
    const local = this.#admitHere(tenant);
    if (this.#fleet === undefined) return local;
    const decision = await this.#fleet.acquire(tenant.id, tenant.limits);
    if (decision.kind === 'refused') {
      local.release();
      throw decision.limit === 'rate' ? rateRefusal(tenant) : capRefusal(tenant);
    }
    return once(() => {
      local.release();
      decision.lease.release();
    });
  }

  #admitHere(tenant: Tenant): AdmissionTicket {
    const counters = this.#countersOf(tenant);
    counters.connectLimit = connectLimit(tenant);
    if (!takeToken(counters.connects, counters.connectLimit, this.#now())) throw rateRefusal(tenant);
    if (counters.active >= tenant.limits.maxConnections) throw capRefusal(tenant);
    counters.active++;
    this.#idle.delete(tenant.id);
    return once(() => {
      counters.active--;
      this.#settle(tenant.id, counters);
    });
  }

  /** Tenants whose counters are kept now (those in use and those idle for less than a second). */
  get trackedTenants(): number {
    return this.#tenants.size;
  }

  /** A counter came down: with nothing left open the tenant joins the idle queue's tail. */
  #settle(tenantId: string, counters: TenantCounters): void {
    if (counters.active > 0 || counters.earlyOpens > 0 || this.#tenants.get(tenantId) !== counters) return;
    this.#idle.delete(tenantId);
    this.#idle.set(tenantId, this.#now());
  }

  /** Sessions currently admitted for a tenant. */
  activeSessions(tenantId: string): number {
    return this.#tenants.get(tenantId)?.active ?? 0;
  }

  #countersOf(tenant: Tenant): TenantCounters {
    let counters = this.#tenants.get(tenant.id);
    if (counters === undefined) {
      this.#forgetIdle();
      counters = {
        active: 0,
        earlyOpens: 0,
        connects: fullBucket(connectLimit(tenant), this.#now()),
        connectLimit: connectLimit(tenant),
        cidrs: tenant.allowedCidrs,
        allowList: cidrAllowList(tenant.allowedCidrs),
      };
      this.#tenants.set(tenant.id, counters);
      this.#idle.set(tenant.id, this.#now());
    } else if (counters.cidrs !== tenant.allowedCidrs && !sameList(counters.cidrs, tenant.allowedCidrs)) {
      counters.cidrs = tenant.allowedCidrs;
      counters.allowList = cidrAllowList(tenant.allowedCidrs);
    }
    return counters;
  }

  /** Forgets, from the idle queue's head, tenants idle long enough for their bucket to be full. */
  #forgetIdle(): void {
    const now = this.#now();
    for (const [id, since] of this.#idle) {
      if (now - since < IDLE_FORGET_MS) return;
      this.#idle.delete(id);
      const counters = this.#tenants.get(id);
      if (counters === undefined || counters.active > 0 || counters.earlyOpens > 0) continue;
      // A bucket that is not full yet (a limit raised meanwhile) comes back to the tail.
      if (isFull(counters.connects, counters.connectLimit, now)) this.#tenants.delete(id);
      else this.#idle.set(id, now);
    }
  }
}

/** A release that counts once, however often it is called. */
function once(release: () => void): { release(): void } {
  let released = false;
  return {
    release: () => {
      if (released) return;
      released = true;
      release();
    },
  };
}

function rateRefusal(tenant: Tenant): Refusal {
  return new Refusal(SqlState.TooManyConnections, `too many new connections per second for tenant "${tenant.id}"`, {
    detail: `The limit is ${tenant.limits.connectsPerSecond} new connections per second.`,
    hint: 'Retry with backoff, or keep connections open in a pool.',
  });
}

function capRefusal(tenant: Tenant): Refusal {
  return new Refusal(SqlState.TooManyConnections, `too many connections for tenant "${tenant.id}"`, {
    detail: `The limit is ${tenant.limits.maxConnections} concurrent connections.`,
    hint: 'Close idle connections or use a connection pool.',
  });
}

function checkStatus(tenant: Tenant): void {
  switch (tenant.status) {
    // A sleeping tenant is woken once the client has logged in (session.ts): one that cannot wakes nothing.
    case 'active':
    case 'sleeping':
      return;
    case 'suspended':
      throw new Refusal(SqlState.ConnectionRejected, `tenant "${tenant.id}" is suspended`, {
        hint: "Contact the service's support to restore access.",
      });
    case 'maintenance':
      throw new Refusal(SqlState.CannotConnectNow, `tenant "${tenant.id}" is in maintenance`, {
        hint: 'Retry in a few minutes.',
      });
  }
}

function connectLimit(tenant: Tenant): BucketLimit {
  return { perSecond: tenant.limits.connectsPerSecond, size: tenant.limits.connectsPerSecond };
}

function sameList(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && a.every((value, i) => value === b[i]);
}
