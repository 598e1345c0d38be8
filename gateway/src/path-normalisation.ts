import type { IncomingMessage } from 'node:http';
import type { App } from '@civildiy/common/service';
import { canonicalTarget } from './canonical-path.ts';
import { invalidPath } from './gateway-errors.ts';

/** Requests {@link rewriteToCanonical} has seen, with the problem of those it could not canonicalise. */
const seen = new WeakMap<IncomingMessage, string | undefined>();

/**
 * Fastify's `rewriteUrl` for the gateway: the request's target in canonical form (see
 * `canonicalTarget`), so that Fastify's router, the route table, the token check, the rate limits and
 * the upstream all see the same path. A target with no canonical form is routed to `/` (nothing is
 * served there) and answered 400 `gateway.invalid_path` by {@link installPathNormalisation}'s hook.
 */
export function rewriteToCanonical(request: IncomingMessage): string {
  const target = canonicalTarget(request.url ?? '/');
  seen.set(request, target.ok ? undefined : target.problem);
  return target.ok ? target.url : '/';
}

/**
 * Answers 400 `gateway.invalid_path` for a request whose target has no canonical form. The app must
 * route on canonical targets: `createServiceApp({ rewriteUrl: rewriteToCanonical })`, which Fastify
 * calls just before routing (`originalUrl` keeps what the client sent), for real requests and
 * `app.inject` alike.
 */
export function installPathNormalisation(app: App): void {
  app.addHook('onRequest', (request, _reply, done) => {
    const problem = seen.get(request.raw);
    if (problem === undefined) done();
    else done(invalidPath(problem));
  });
}
