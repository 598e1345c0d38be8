import Fastify, { LogController, type FastifyBaseLogger } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { register, type Registry } from 'prom-client';
import type { Logger } from '@civildiy/common';
import { installErrorHandling, type App } from '@civildiy/common/service';
import { registerOpsApi } from './api.ts';

/**
 * The gateway's operations app, for its own port (`GATEWAY_OPS_PORT`): `GET /metrics` (the registry
 * the public app records into: every upstream's timings and failures, for operators and Prometheus
 * only) and `GET /health/live`. A server of its own rather than routes on the public one, so that no
 * path, however spelled, reaches them from the public port. Anything else is 404 `route_not_found`.
 */
export function buildOpsApp(options: { logger: Logger; registry?: Registry }): App {
  const registry = options.registry ?? register;
  const app = Fastify({
    loggerInstance: options.logger as FastifyBaseLogger,
    logController: new LogController({ disableRequestLogging: true }),
  }).withTypeProvider<ZodTypeProvider>();
  installErrorHandling(app);
  registerOpsApi(app, registry);
  return app;
}
