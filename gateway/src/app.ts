import cors from '@fastify/cors';
import type { Logger } from '@civildiy/common';
import type { ServiceDiscovery } from '@civildiy/common/discovery';
import type { Redis } from '@civildiy/common/redis';
import { createServiceApp, createTokenVerifier, type App, type KeySource } from '@civildiy/common/service';
import { GATEWAY_ROUTES } from '@civildiy/common/topology';
import { registerApi } from './api.ts';
import { ApiDocs, type OpenApiDocument } from './api-docs.ts';
import { ClientAddresses } from './client-address.ts';
import { ROUTED_SERVICES, type GatewayConfig } from './config.ts';
import { Gateway } from './gateway.ts';
import { gatewayMetrics } from './gateway-metrics.ts';
import { installPathNormalisation, rewriteToCanonical } from './path-normalisation.ts';
import { RateLimits } from './rate-limits.ts';
import { RouteTable } from './route-table.ts';
import { checkSystemHealth } from './system-health.ts';
import { UpstreamAdmission } from './upstream-admission.ts';
import { UpstreamProxy } from './upstream-proxy.ts';

/** What the gateway's HTTP app needs. */
export interface GatewayAppDeps {
  config: GatewayConfig;
  logger: Logger;
  /** Where access tokens' keys come from: `{ jwksUrl: AUTH_JWKS_URL }` (tests: `createTestTokens().keys`). */
  auth: KeySource;
  discovery: ServiceDiscovery;
  /** The rate limits' connection (`createRateLimitRedis`: fails fast, so the limits can fail open). */
  rateLimitRedis: Redis;
}

/** Headers a browser script may read from the gateway's answers. */
const EXPOSED_HEADERS = ['x-request-id', 'retry-after', 'x-ratelimit-limit', 'x-ratelimit-remaining', 'x-ratelimit-reset', 'location', 'etag'];

/** The gateway's public Fastify app (not listening); its metrics are served by `buildOpsApp`. */
export async function buildApp(deps: GatewayAppDeps): Promise<App> {
  const { config } = deps;
  const app = await createServiceApp({
    name: 'gateway',
    logger: deps.logger,
    // The gateway checks tokens itself, per route table entry (public routes verify a token too).
    auth: false,
    // Ready without Redis: the rate limits fail open, so the gateway still serves. GET /health shows Redis.
    readiness: {},
    bodyLimitBytes: config.GATEWAY_BODY_LIMIT_BYTES,
    logRequests: config.GATEWAY_LOG_REQUESTS,
    docs: { title: 'CivilDIY gateway', description: 'The single entry point of the CivilDIY API.' },
    // Routed, protected, limited and forwarded on one canonical path.
    rewriteUrl: rewriteToCanonical,
    // Its metrics (every upstream's timings) are for operators: served on the operations port (`buildOpsApp`).
    metricsRoute: false,
    // Work is admitted per upstream (a slow service must not take every slot), see `UpstreamAdmission`.
    admission: false,
    http: { requestTimeoutMs: config.GATEWAY_UPSTREAM_TIMEOUT_MS, trustedProxies: config.GATEWAY_TRUSTED_PROXIES },
  });
  installPathNormalisation(app);

  const corsOrigins = config.GATEWAY_CORS_ORIGINS;
  if (corsOrigins.length > 0) {
    await app.register(cors, {
      origin: corsOrigins.includes('*') ? '*' : corsOrigins,
      methods: ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE'],
      exposedHeaders: EXPOSED_HEADERS,
      maxAge: 600,
    });
  }

  const routes = new RouteTable(GATEWAY_ROUTES);
  const metrics = gatewayMetrics();
  const proxy = new UpstreamProxy({ timeoutMs: config.GATEWAY_UPSTREAM_TIMEOUT_MS, bodyLimitBytes: config.GATEWAY_BODY_LIMIT_BYTES, metrics });
  const limits = new RateLimits({
    redis: deps.rateLimitRedis,
    keyPrefix: config.REDIS_KEY_PREFIX,
    settings: {
      perAddressPerMinute: config.GATEWAY_RATE_LIMIT_IP_PER_MINUTE,
      perUserPerMinute: config.GATEWAY_RATE_LIMIT_USER_PER_MINUTE,
      routeFactor: config.GATEWAY_RATE_LIMIT_ROUTE_FACTOR,
    },
    routes: routes.routes,
    logger: deps.logger,
    metrics,
  });
  const gateway = new Gateway({
    routes,
    verifyToken: createTokenVerifier(deps.auth),
    clients: new ClientAddresses(config.GATEWAY_TRUSTED_PROXIES),
    limits,
    discovery: deps.discovery,
    proxy,
    admission: new UpstreamAdmission(
      {
        maxConcurrent: config.GATEWAY_UPSTREAM_CONNECTIONS,
        maxQueueMs: config.GATEWAY_UPSTREAM_QUEUE_MS,
        maxQueued: config.GATEWAY_UPSTREAM_MAX_QUEUED,
        adaptive: { initial: Math.min(16, config.GATEWAY_UPSTREAM_CONNECTIONS), min: Math.min(4, config.GATEWAY_UPSTREAM_CONNECTIONS), latencyTargetMs: config.GATEWAY_UPSTREAM_LATENCY_TARGET_MS },
      },
      metrics,
    ),
    metrics,
  });
  const docs = new ApiDocs({
    services: ROUTED_SERVICES,
    discovery: deps.discovery,
    routes,
    own: () => app.swagger() as unknown as OpenApiDocument,
    cacheMs: config.GATEWAY_DOCS_CACHE_MS,
    fetchTimeoutMs: config.GATEWAY_HEALTH_TIMEOUT_MS,
  });
  const health = () =>
    checkSystemHealth({
      services: ROUTED_SERVICES,
      discovery: deps.discovery,
      own: { redis: () => deps.rateLimitRedis.ping() },
      timeoutMs: config.GATEWAY_HEALTH_TIMEOUT_MS,
    });

  await registerApi(app, { routes, gateway, proxy, docs, health, metrics, upstreamConnections: config.GATEWAY_UPSTREAM_CONNECTIONS, cors: corsOrigins.length > 0 });
  return app;
}
