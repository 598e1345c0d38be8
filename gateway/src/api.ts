import type { Registry } from 'prom-client';
import replyFrom from '@fastify/reply-from';
import type { App } from '@civildiy/common/service';
import { ROUTE_METHODS } from '@civildiy/common/topology';
import type { ApiDocs } from './api-docs.ts';
import type { Gateway } from './gateway.ts';
import { methodNotAllowed } from './gateway-errors.ts';
import type { GatewayMetrics } from './gateway-metrics.ts';
import type { RouteTable } from './route-table.ts';
import { SystemHealth } from './system-health.ts';
import type { UpstreamProxy } from './upstream-proxy.ts';

/** What the gateway's routes call. */
export interface GatewayApiDeps {
  routes: RouteTable;
  gateway: Gateway;
  proxy: UpstreamProxy;
  docs: ApiDocs;
  health: () => Promise<SystemHealth>;
  metrics: GatewayMetrics;
  /** Keep-alive connections pooled per upstream instance. */
  upstreamConnections: number;
  /** Whether CORS is on: its plugin then owns `OPTIONS *` (preflight), so the proxy does not take OPTIONS. */
  cors: boolean;
}

/** The routes of the gateway's operations port (`buildOpsApp`): `GET /metrics` of `registry` and `GET /health/live`. */
export function registerOpsApi(app: App, registry: Registry): void {
  app.get('/metrics', async (_request, reply) => reply.type(registry.contentType).send(await registry.metrics()));
  app.get('/health/live', async () => ({ status: 'ok' }));
}

/**
 * Every HTTP route of the gateway: `GET /health`, the merged `GET /docs/json`, and the route table:
 * each prefix and everything under it, for every method, either forwarded by the entry the table's
 * first match names or answered 405. Fastify's router matches them on the canonical path (see
 * `installPathNormalisation`); no table prefix overlaps the gateway's own routes (`/health*`,
 * `/docs*`), and a path under no prefix is a 404.
 */
export async function registerApi(app: App, deps: GatewayApiDeps): Promise<void> {
  app.get(
    '/health',
    {
      schema: {
        tags: ['health'],
        summary: "The gateway's and every upstream service's readiness",
        response: { 200: SystemHealth, 503: SystemHealth },
      },
    },
    async (_request, reply) => {
      const health = await deps.health();
      return reply.status(health.status === 'ready' ? 200 : 503).send(health);
    },
  );

  // The shared service kit serves the gateway's own OpenAPI document at /docs/json (and Swagger UI
  // reads it from there); the gateway answers those two URLs with the merged document instead. JSON is
  // valid YAML, so /docs/yaml gets the same text.
  app.addHook('onRequest', (request, reply, done) => {
    const url = request.routeOptions.url;
    if (url !== '/docs/json' && url !== '/docs/yaml') {
      done();
      return;
    }
    deps.docs.document().then(
      (document) => reply.type(url === '/docs/yaml' ? 'application/x-yaml' : 'application/json; charset=utf-8').send(JSON.stringify(document)),
      done,
    );
  });

  await app.register(async (proxied) => {
    proxied.removeAllContentTypeParsers();
    proxied.addContentTypeParser('*', deps.proxy.passBody);
    await proxied.register(replyFrom, {
      undici: { connections: deps.upstreamConnections, pipelining: 1, keepAliveTimeout: 60_000 },
      disableRequestLogging: true,
      // Not destroyed on close: that would cut the requests still in flight when the gateway shuts down.
      destroyAgent: false,
    });
    proxied.decorateRequest('proxied', null);
    proxied.addHook('onResponse', (request, reply, done) => {
      const target = request.proxied;
      deps.metrics.requests.inc({
        route: target ? target.route.label : 'unmatched',
        service: target ? target.route.service : 'none',
        status: String(reply.statusCode),
      });
      done();
    });
    routeTheTable(proxied, deps);
  });
}

/**
 * The route table on Fastify's router: every prefix and `<prefix>/*`, each method forwarded by the
 * entry the table's first match names there, or answered 405 with the methods the prefix has. With
 * CORS on, its plugin owns `OPTIONS *` (preflight), so the table does not take OPTIONS.
 */
function routeTheTable(proxied: App, deps: GatewayApiDeps): void {
  const methods = deps.cors ? ROUTE_METHODS.filter((method) => method !== 'OPTIONS') : ROUTE_METHODS;
  for (const entry of deps.routes.routerEntries(methods)) {
    for (const url of [entry.prefix, `${entry.prefix}/*`]) {
      for (const { route, methods: forwarded } of entry.forwards) {
        proxied.route({
          method: forwarded,
          url,
          exposeHeadRoute: false,
          schema: { hide: true },
          handler: (request, reply) => deps.gateway.handle(route, request, reply),
        });
      }
      const refused = entry.refused;
      if (refused) {
        proxied.route({
          method: refused.methods,
          url,
          exposeHeadRoute: false,
          schema: { hide: true },
          handler: (request, reply) => {
            reply.header('allow', refused.allow.join(', '));
            throw methodNotAllowed(request.method);
          },
        });
      }
    }
  }
}
