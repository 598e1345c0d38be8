import type { Logger } from '@civildiy/common';
import type { Database } from '@civildiy/common/db';
import { createServiceApp, type App, type HttpSettings, type KeySource, type ReadinessCheck } from '@civildiy/common/service';
import { ordersApi } from './api.ts';
import type * as schema from './db/schema.ts';

/** What order-service's HTTP app needs. */
export interface OrderAppDeps {
  db: Database<typeof schema>;
  logger: Logger;
  auth: KeySource;
  readiness: Record<string, ReadinessCheck>;
  logRequests?: boolean;
  /** Admission limits, deadlines, trusted proxies: `httpSettings(config)` (defaults in tests). */
  http?: Partial<HttpSettings>;
}

/** order-service's Fastify app (not listening). */
export async function buildApp(deps: OrderAppDeps): Promise<App> {
  const app = await createServiceApp({
    name: 'order-service',
    logger: deps.logger,
    auth: deps.auth,
    readiness: deps.readiness,
    docs: { title: 'CivilDIY order-service', description: 'Catalog of DIY kits and orders, processed by the worker.' },
    ...(deps.logRequests === undefined ? {} : { logRequests: deps.logRequests }),
    ...(deps.http ? { http: deps.http } : {}),
  });
  await app.register(ordersApi({ db: deps.db }));
  return app;
}
