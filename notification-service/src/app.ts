import type { Logger } from '@civildiy/common';
import type { Database } from '@civildiy/common/db';
import { createServiceApp, type App, type HttpSettings, type KeySource, type ReadinessCheck } from '@civildiy/common/service';
import { notificationsApi } from './api.ts';
import type * as schema from './db/schema.ts';

/** What notification-service's HTTP app needs. */
export interface NotificationAppDeps {
  db: Database<typeof schema>;
  logger: Logger;
  auth: KeySource;
  readiness: Record<string, ReadinessCheck>;
  logRequests?: boolean;
  /** Admission limits, deadlines, trusted proxies: `httpSettings(config)` (defaults in tests). */
  http?: Partial<HttpSettings>;
}

/** notification-service's Fastify app (not listening). */
export async function buildApp(deps: NotificationAppDeps): Promise<App> {
  const app = await createServiceApp({
    name: 'notification-service',
    logger: deps.logger,
    auth: deps.auth,
    readiness: deps.readiness,
    docs: { title: 'CivilDIY notification-service', description: 'Notifications delivered to users through the messaging provider.' },
    ...(deps.logRequests === undefined ? {} : { logRequests: deps.logRequests }),
    ...(deps.http ? { http: deps.http } : {}),
  });
  await app.register(notificationsApi({ db: deps.db }));
  return app;
}
