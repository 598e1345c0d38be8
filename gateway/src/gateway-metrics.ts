import { Counter, Histogram, register, type Registry } from 'prom-client';
import { reuseMetric } from '@civildiy/common/service';

/** The gateway's own Prometheus metrics (besides the request durations every service has). */
export interface GatewayMetrics {
  /** Proxied requests by route table entry, upstream service and the status the client got. */
  requests: Counter<'route' | 'service' | 'status'>;
  /** Time from forwarding a request to the upstream's response headers. */
  upstreamDuration: Histogram<'service' | 'status'>;
  /** Upstream failures the gateway answered itself (502/504). */
  upstreamFailures: Counter<'service' | 'kind'>;
  /** Requests answered 429, by the budget that ran out. */
  rateLimited: Counter<'limit'>;
  /** Requests let through unlimited because Redis did not answer. */
  rateLimitFailOpen: Counter;
  /** Requests refused 503 `service.overloaded` because their upstream had no free slot in time. */
  shed: Counter<'service' | 'reason'>;
}

/** Creates (or, in tests with several apps, reuses) the gateway metrics in `registry`. */
export function gatewayMetrics(registry: Registry = register): GatewayMetrics {
  return {
    shed: reuseMetric(
      registry,
      'civildiy_gateway_shed_total',
      () =>
        new Counter({
          name: 'civildiy_gateway_shed_total',
          help: 'Requests refused with 503 service.overloaded: no slot for their upstream in time (reason: queue_full, queue_timeout, deadline)',
          labelNames: ['service', 'reason'] as const,
          registers: [registry],
        }),
    ),
    requests: reuseMetric(
      registry,
      'civildiy_gateway_requests_total',
      () =>
        new Counter({
          name: 'civildiy_gateway_requests_total',
          help: 'Requests through the gateway by route, upstream service and status',
          labelNames: ['route', 'service', 'status'] as const,
          registers: [registry],
        }),
    ),
    upstreamDuration: reuseMetric(
      registry,
      'civildiy_gateway_upstream_duration_seconds',
      () =>
        new Histogram({
          name: 'civildiy_gateway_upstream_duration_seconds',
          help: "Time until the upstream's response headers, by service and upstream status",
          labelNames: ['service', 'status'] as const,
          buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
          registers: [registry],
        }),
    ),
    upstreamFailures: reuseMetric(
      registry,
      'civildiy_gateway_upstream_failures_total',
      () =>
        new Counter({
          name: 'civildiy_gateway_upstream_failures_total',
          help: 'Upstream calls that failed (kind: unavailable, timeout, not_configured)',
          labelNames: ['service', 'kind'] as const,
          registers: [registry],
        }),
    ),
    rateLimited: reuseMetric(
      registry,
      'civildiy_gateway_rate_limited_total',
      () =>
        new Counter({
          name: 'civildiy_gateway_rate_limited_total',
          help: 'Requests answered 429 by the budget that ran out (address, user, route)',
          labelNames: ['limit'] as const,
          registers: [registry],
        }),
    ),
    rateLimitFailOpen: reuseMetric(
      registry,
      'civildiy_gateway_rate_limit_fail_open_total',
      () =>
        new Counter({
          name: 'civildiy_gateway_rate_limit_fail_open_total',
          help: 'Requests let through without rate limiting because Redis did not answer',
          registers: [registry],
        }),
    ),
  };
}
