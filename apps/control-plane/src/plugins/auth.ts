// Bearer token authentication and the one authorisation rule: admin tokens may do everything,
// gateway tokens may only read routes. A route says who may call it in `config.auth`; a route
// that says nothing (and any unknown URL) is for admins.
import fp from 'fastify-plugin';
import type { FastifyPluginAsync } from 'fastify';
import { ForbiddenError, UnauthorizedError } from '../errors.ts';
import { bearerToken } from '@tenantgate/runtime';
import { Access, TokenTable } from '../tokens.ts';

export const RouteAuth = {
  /** No token needed: health, readiness, metrics, docs. */
  Public: 'public',
  /** A gateway or an admin token. */
  Gateway: 'gateway',
  /** An admin token. */
  Admin: 'admin',
} as const;
export type RouteAuth = (typeof RouteAuth)[keyof typeof RouteAuth];

declare module 'fastify' {
  interface FastifyContextConfig {
    auth?: RouteAuth;
  }
  interface FastifyRequest {
    /** What the request's token grants; null on public routes without a token. */
    access: Access | null;
  }
}

export interface AuthPluginOptions {
  readonly adminTokens: readonly string[];
  readonly gatewayTokens: readonly string[];
}

const auth: FastifyPluginAsync<AuthPluginOptions> = async (app, options) => {
  const tokens = new TokenTable(options.adminTokens, options.gatewayTokens);
  app.decorateRequest('access', null);
  app.addHook('onRequest', async (request) => {
    const required = request.routeOptions.config.auth ?? RouteAuth.Admin;
    if (required === RouteAuth.Public) return;
    const token = bearerToken(request.headers.authorization);
    const access = token === undefined ? undefined : tokens.lookup(token);
    if (access === undefined) throw new UnauthorizedError();
    if (required === RouteAuth.Admin && access !== Access.Admin) throw new ForbiddenError();
    request.access = access;
  });
};

export default fp(auth, { name: 'auth', fastify: '5.x', dependencies: ['errors'] });
