import replyFrom from '@fastify/reply-from';
import type { HTTPMethods } from 'fastify';
import type { App } from '@civildiy/common/service';
import type { ApiDocs } from './api-docs.ts';
import type { Gateway } from './gateway.ts';
import type { GatewayMetrics } from './gateway-metrics.ts';
import { SystemHealth } from './system-health.ts';
import type { UpstreamProxy } from './upstream-proxy.ts';

/** What the gateway's routes call. */
export interface GatewayApiDeps {
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

const PROXIED_METHODS: HTTPMethods[] = ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE'];

/**
 * Every HTTP route of the gateway: `GET /health`, the merged `GET /docs/json`, and the catch-all that
 * forwards everything else through the route table. The gateway's own routes (`/health*`, `/docs*`,
 * `/metrics`) are static and win over the catch-all in the router; no table prefix overlaps them.
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
    proxied.route({
      method: deps.cors ? PROXIED_METHODS : [...PROXIED_METHODS, 'OPTIONS'],
      url: '/*',
      schema: { hide: true },
      handler: (request, reply) => deps.gateway.handle(request, reply),
    });
  });
}
