import { z } from 'zod';
import { baseEnv, envBool, envInt, envList } from '@civildiy/common';
import { parseBaseUrls, serviceUrlVariable } from '@civildiy/common/discovery';
import { GATEWAY_ROUTES } from '@civildiy/common/topology';

/** The services the route table sends requests to, in table order. */
export const ROUTED_SERVICES = [...new Set(GATEWAY_ROUTES.map((route) => route.service))];

const baseUrlList = z.string().refine(
  (value) => {
    try {
      return parseBaseUrls(value).length > 0;
    } catch {
      return false;
    }
  },
  { message: 'not a comma-separated list of http(s)://host:port URLs' },
);

/** `AUTH_URL`, `POSTS_URL`, …: where each routed service runs (read by the static discovery). */
const upstreamUrls = Object.fromEntries(
  ROUTED_SERVICES.map((service) => [
    serviceUrlVariable(service),
    baseUrlList
      .optional()
      .describe(`base URL(s) of ${service}, comma-separated for several instances (default http://127.0.0.1:<its port>, if it has one)`),
  ]),
);

/** gateway environment (see .env.example). */
export const gatewayEnv = baseEnv
  // The gateway limits work per upstream (GATEWAY_UPSTREAM_*), its deadline is GATEWAY_UPSTREAM_TIMEOUT_MS
  // and it believes X-Forwarded-* from GATEWAY_TRUSTED_PROXIES only: the services' HTTP_* do not apply.
  .omit({ HTTP_MAX_CONCURRENT_REQUESTS: true, HTTP_MAX_QUEUE_MS: true, HTTP_MAX_QUEUED_REQUESTS: true, HTTP_REQUEST_TIMEOUT_MS: true, TRUSTED_PROXIES: true })
  .extend({
  GATEWAY_PORT: envInt(0, 65535).default(8000).describe('the HTTP port of the gateway'),
  GATEWAY_OPS_PORT: envInt(0, 65535)
    .default(8009)
    .describe("the gateway's operations port (on HOST): GET /metrics and GET /health/live, for operators and Prometheus only, never to be exposed publicly; 0 = none"),
  GATEWAY_UPSTREAM_TIMEOUT_MS: envInt(100, 600_000)
    .default(10_000)
    .describe(
      "a request's deadline from its arrival at the gateway: waiting for a slot, then for the upstream to start answering (and between body chunks); past it the gateway answers 504. The upstream is told what is left (X-Request-Timeout-Ms) and commits nothing after it (ms)",
    ),
  GATEWAY_UPSTREAM_CONNECTIONS: envInt(1, 10_000)
    .default(128)
    .describe('keep-alive connections the gateway pools per upstream instance: the most requests it sends one instance at once (see GATEWAY_UPSTREAM_LATENCY_TARGET_MS); more wait (GATEWAY_UPSTREAM_QUEUE_MS)'),
  GATEWAY_UPSTREAM_QUEUE_MS: envInt(0, 60_000)
    .default(250)
    .describe('the longest a request waits for a free connection to its upstream before 503 service.overloaded with Retry-After (ms)'),
  GATEWAY_UPSTREAM_MAX_QUEUED: envInt(0, 1_000_000).default(1_024).describe('requests waiting for a connection to one upstream instance at most; more are refused at once'),
  GATEWAY_UPSTREAM_LATENCY_TARGET_MS: envInt(10, 600_000)
    .default(1_000)
    .describe(
      'the requests in flight to one upstream instance follow its latency: they grow while answers come within this, and shrink by a quarter when one is slower or fails for load (at most GATEWAY_UPSTREAM_CONNECTIONS, at least 4) (ms)',
    ),
  GATEWAY_BODY_LIMIT_BYTES: envInt(0, 1024 ** 3).default(1024 * 1024).describe('the largest request body the gateway forwards (bytes); larger → 413'),
  GATEWAY_RATE_LIMIT_IP_PER_MINUTE: envInt(0, 1_000_000_000).default(600).describe('requests per client address per minute, shared by every gateway process through Redis; 0 = no limit'),
  GATEWAY_RATE_LIMIT_USER_PER_MINUTE: envInt(0, 1_000_000_000).default(300).describe('requests per authenticated user per minute; 0 = no limit'),
  GATEWAY_RATE_LIMIT_ROUTE_FACTOR: z.coerce
    .number()
    .min(0)
    .max(1_000_000)
    .default(1)
    .describe('multiplies the per-route budgets of the route table (e.g. /auth/login, /auth/register); 0 = turn them off'),
  GATEWAY_CORS_ORIGINS: envList
    .default([])
    .describe('comma-separated origins allowed to call the API from a browser (* for any); empty = no CORS headers'),
  GATEWAY_TRUSTED_PROXIES: envList
    .default([])
    .describe('comma-separated addresses of proxies in front of the gateway whose X-Forwarded-* it believes; empty = the gateway is the edge'),
  GATEWAY_HEALTH_TIMEOUT_MS: envInt(50, 60_000).default(2_000).describe("how long GET /health and GET /docs/json wait for each upstream's /health/ready and /docs/json (ms)"),
  GATEWAY_DOCS_CACHE_MS: envInt(0, 3_600_000).default(15_000).describe('how long the merged OpenAPI document of GET /docs/json is reused (ms)'),
  GATEWAY_LOG_REQUESTS: envBool.default(false).describe('log every request at info (off: only failures are logged, for throughput)'),
  ...upstreamUrls,
}).refine((config) => config.GATEWAY_OPS_PORT === 0 || config.GATEWAY_OPS_PORT !== config.GATEWAY_PORT, {
  path: ['GATEWAY_OPS_PORT'],
  message: 'must differ from GATEWAY_PORT (or be 0)',
});
export type GatewayConfig = z.infer<typeof gatewayEnv>;
