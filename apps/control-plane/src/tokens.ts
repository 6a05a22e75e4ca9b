// Bearer tokens and what they may do: the admin and gateway lists, each checked in constant time
// (libs/runtime KnownTokens), both always, so the time a check takes says nothing about which
// list matched.
import { KnownTokens } from '@tenantgate/runtime';

export const Access = {
  /** Reads and writes everything. */
  Admin: 'admin',
  /** Reads routes (GET /v1/routes/:id) only. */
  Gateway: 'gateway',
} as const;
export type Access = (typeof Access)[keyof typeof Access];

export class TokenTable {
  readonly #admin: KnownTokens;
  readonly #gateway: KnownTokens;

  constructor(adminTokens: readonly string[], gatewayTokens: readonly string[] = []) {
    this.#admin = new KnownTokens(adminTokens);
    this.#gateway = new KnownTokens(gatewayTokens);
  }

  /** The access a token grants, or undefined for an unknown token. Admin wins over gateway. */
  lookup(token: string): Access | undefined {
    const admin = this.#admin.has(token);
    const gateway = this.#gateway.has(token);
    return admin ? Access.Admin : gateway ? Access.Gateway : undefined;
  }
}
