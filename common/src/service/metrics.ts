import type { FastifyInstance } from 'fastify';
import { Histogram, collectDefaultMetrics, register, type Registry } from 'prom-client';

let defaultsCollected = false;

/**
 * Returns the metric named `name` from `registry` if it exists, else creates it with `create`.
 * Lets several instances of a component (tests, several clients in one process) share a metric.
 */
export function reuseMetric<M>(registry: Registry, name: string, create: () => M): M {
  return (registry.getSingleMetric(name) as M | undefined) ?? create();
}

/**
 * `GET /metrics` in Prometheus text format (unless `route: false`: then another listener serves the
 * registry), Node's default metrics (once per process) labelled with the service, and
 * `civildiy_http_request_duration_seconds{method,route,status}`.
 */
export function installMetrics(app: FastifyInstance, service: string, registry: Registry = register, options: { route?: boolean } = {}): void {
  if (!defaultsCollected && registry === register) {
    registry.setDefaultLabels({ service });
    collectDefaultMetrics({ register: registry });
    defaultsCollected = true;
  }
  const duration = reuseMetric(
    registry,
    'civildiy_http_request_duration_seconds',
    () =>
      new Histogram({
        name: 'civildiy_http_request_duration_seconds',
        help: 'HTTP request duration by route and status',
        labelNames: ['method', 'route', 'status'] as const,
        buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
        registers: [registry],
      }),
  );
  app.addHook('onResponse', (request, reply, done) => {
    const route = request.routeOptions.url ?? 'unmatched';
    if (route !== '/metrics') {
      duration.observe({ method: request.method, route, status: String(reply.statusCode) }, reply.elapsedTime / 1000);
    }
    done();
  });
  if (options.route === false) return;
  app.get('/metrics', { schema: { hide: true } }, async (_request, reply) => {
    reply.type(registry.contentType);
    return registry.metrics();
  });
}
