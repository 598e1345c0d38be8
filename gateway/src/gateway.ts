import type { FastifyReply, FastifyRequest } from 'fastify';
import { UnauthorizedError, currentDeadline, enrichContext } from '@civildiy/common';
import { ServiceNotFoundError, type ServiceDiscovery } from '@civildiy/common/discovery';
import { assertRole, bearerToken, type AuthenticatedUser } from '@civildiy/common/service';
import type { ClientAddresses } from './client-address.ts';
import { rateLimited, upstreamUnavailable } from './gateway-errors.ts';
import type { GatewayMetrics } from './gateway-metrics.ts';
import type { RateLimits } from './rate-limits.ts';
import type { CompiledRoute, RouteTable } from './route-table.ts';
import type { UpstreamAdmission } from './upstream-admission.ts';
import type { UpstreamProxy } from './upstream-proxy.ts';

/** What {@link Gateway} works with. */
export interface GatewayParts {
  routes: RouteTable;
  verifyToken: (token: string) => Promise<AuthenticatedUser>;
  clients: ClientAddresses;
  limits: RateLimits;
  discovery: ServiceDiscovery;
  proxy: UpstreamProxy;
  admission: UpstreamAdmission;
  metrics: GatewayMetrics;
}

/**
 * The path of one request through the gateway, once the router has picked its route table entry
 * (on the canonical path): refuse a case variant of a table prefix, check the bearer token and the
 * role an operator route requires (403 `auth.role_required` without it), count the request against
 * the rate limits, find an instance of the service and forward it.
 *
 * The budgets are counted before a token error is answered, so a client sending bad tokens in a loop
 * runs into 429 like any other.
 */
export class Gateway {
  constructor(private readonly parts: GatewayParts) {}

  /** Answers `request` for `route`: from the upstream, or with the gateway's own 4xx/5xx. */
  async handle(route: CompiledRoute, request: FastifyRequest, reply: FastifyReply): Promise<FastifyReply> {
    const { routes, clients, limits, discovery, proxy } = this.parts;
    const queryAt = request.url.indexOf('?');
    const path = queryAt === -1 ? request.url : request.url.slice(0, queryAt);
    if (routes.lookalike(path) !== undefined) {
      reply.callNotFound();
      return reply;
    }
    const client = clients.of(request);
    request.proxied = { route, client, user: undefined, sentAt: 0 };

    let user: AuthenticatedUser | undefined;
    let authError: unknown;
    if (route.verifyToken) {
      const token = bearerToken(request);
      if (token) {
        try {
          user = await this.parts.verifyToken(token);
          if (route.role) assertRole(user, route.role);
        } catch (error) {
          authError = error;
        }
      } else if (route.protected) {
        authError = new UnauthorizedError('A bearer access token is required', 'auth.missing_token');
      }
    }

    const verdict = await limits.consume(route, client.address, user?.id);
    if (verdict.tightest) {
      reply.header('x-ratelimit-limit', verdict.tightest.limit);
      reply.header('x-ratelimit-remaining', verdict.tightest.remaining);
      reply.header('x-ratelimit-reset', verdict.tightest.resetSeconds);
    }
    if (verdict.limited) throw rateLimited(verdict.retryAfterSeconds);
    if (authError !== undefined) throw authError;
    if (user) {
      request.proxied.user = user;
      enrichContext({ userId: user.id });
    }

    let base: string;
    try {
      base = await discovery.resolve(route.service);
    } catch (error) {
      if (!(error instanceof ServiceNotFoundError)) throw error;
      this.parts.metrics.upstreamFailures.inc({ service: route.service, kind: 'not_configured' });
      throw upstreamUnavailable(route.service, error);
    }
    await this.parts.admission.enter(route.service, base, currentDeadline(), reply);
    return proxy.forward(request, reply, base, path);
  }
}
