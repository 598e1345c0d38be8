import type { Logger } from '@civildiy/common';
import { createServiceApp, type App, type HttpSettings, type KeySource, type ReadinessCheck } from '@civildiy/common/service';
import { postsApi } from './api.ts';
import type { PostsStore } from './posts-store.ts';

/** What posts-service's HTTP app needs. */
export interface PostsAppDeps {
  /** The write model (its writes wake the outbox relay themselves). */
  store: PostsStore;
  logger: Logger;
  auth: KeySource;
  readiness: Record<string, ReadinessCheck>;
  logRequests?: boolean;
  /** Admission limits, deadlines, trusted proxies: `httpSettings(config)` (defaults in tests). */
  http?: Partial<HttpSettings>;
}

/** posts-service's Fastify app (not listening). */
export async function buildApp(deps: PostsAppDeps): Promise<App> {
  const app = await createServiceApp({
    name: 'posts-service',
    logger: deps.logger,
    auth: deps.auth,
    readiness: deps.readiness,
    docs: { title: 'CivilDIY posts-service', description: 'Posts (the write model); every change goes out on posts-events through the outbox.' },
    ...(deps.logRequests === undefined ? {} : { logRequests: deps.logRequests }),
    ...(deps.http ? { http: deps.http } : {}),
  });
  await app.register(postsApi({ store: deps.store }));
  return app;
}
