import type { Logger } from '@civildiy/common';
import type { Database } from '@civildiy/common/db';
import { createServiceApp, type App, type HttpSettings, type KeySource, type ReadinessCheck } from '@civildiy/common/service';
import { profilesApi } from './api.ts';
import type * as schema from './db/schema.ts';

/** What profile-service's HTTP app needs. */
export interface ProfileAppDeps {
  db: Database<typeof schema>;
  logger: Logger;
  auth: KeySource;
  readiness: Record<string, ReadinessCheck>;
  logRequests?: boolean;
  /** Admission limits, deadlines, trusted proxies: `httpSettings(config)` (defaults in tests). */
  http?: Partial<HttpSettings>;
}

/** profile-service's Fastify app (not listening). */
export async function buildApp(deps: ProfileAppDeps): Promise<App> {
  const app = await createServiceApp({
    name: 'profile-service',
    logger: deps.logger,
    auth: deps.auth,
    readiness: deps.readiness,
    docs: { title: 'CivilDIY profile-service', description: 'User profiles, created when a user registers and edited by their owner.' },
    ...(deps.logRequests === undefined ? {} : { logRequests: deps.logRequests }),
    ...(deps.http ? { http: deps.http } : {}),
  });
  await app.register(profilesApi({ db: deps.db }));
  return app;
}
