import type { Logger } from '@civildiy/common';
import { createServiceApp, type App, type HttpSettings, type KeySource, type ReadinessCheck } from '@civildiy/common/service';
import type { Registry } from 'prom-client';
import { dashboardApi, type DashboardApiDeps } from './api.ts';

/** What the dashboard's HTTP app needs. */
export interface DashboardAppDeps extends DashboardApiDeps {
  logger: Logger;
  /** Where operators' access tokens are verified (auth-service's JWKS). */
  auth: KeySource;
  readiness: Record<string, ReadinessCheck>;
  /** Where `/metrics` reads from. Default: prom-client's global registry. */
  metricsRegistry?: Registry;
  logRequests?: boolean;
  /** Admission limits, deadlines, trusted proxies: `httpSettings(config)` (defaults in tests). */
  http?: Partial<HttpSettings>;
}

/** The dashboard's Fastify app (not listening): its API under `/admin`, its page at `/`. Live streams end when it closes. */
export async function buildApp(deps: DashboardAppDeps): Promise<App> {
  const app = await createServiceApp({
    name: 'dashboard',
    logger: deps.logger,
    auth: deps.auth,
    readiness: deps.readiness,
    docs: {
      title: 'CivilDIY dashboard',
      description: "The operators' dashboard: services, task queues, event streams, dead letters, the last hour as charts, live updates.",
    },
    ...(deps.metricsRegistry ? { metricsRegistry: deps.metricsRegistry } : {}),
    ...(deps.logRequests === undefined ? {} : { logRequests: deps.logRequests }),
    ...(deps.http ? { http: deps.http } : {}),
  });
  // Open event streams would keep the server from closing.
  app.addHook('preClose', (done) => {
    deps.live.close();
    done();
  });
  await app.register(dashboardApi(deps));
  return app;
}
