import type { Logger } from '@civildiy/common';
import { createServiceApp, type App, type HttpSettings, type KeySource, type ReadinessCheck } from '@civildiy/common/service';
import type { Registry } from 'prom-client';
import { feedApi } from './api.ts';
import type { FeedReader } from './feed-reader.ts';
import type { RebuildRunner } from './rebuild-runner.ts';

/** What feed-service's HTTP app needs. */
export interface FeedAppDeps {
  reader: FeedReader;
  /** Runs the rebuilds the operations routes start. */
  rebuilds: RebuildRunner;
  /** Verifies the tokens of the operations routes (`/feed/rebuild`, operator role). */
  auth: KeySource;
  logger: Logger;
  readiness: Record<string, ReadinessCheck>;
  /** Where `/metrics` reads from. Default: prom-client's global registry. */
  metricsRegistry?: Registry;
  logRequests?: boolean;
  /** Admission limits, deadlines, trusted proxies: `httpSettings(config)` (defaults in tests). */
  http?: Partial<HttpSettings>;
}

/** feed-service's Fastify app (not listening). The feeds are public; the rebuild routes are for operators. */
export async function buildApp(deps: FeedAppDeps): Promise<App> {
  const app = await createServiceApp({
    name: 'feed-service',
    logger: deps.logger,
    auth: deps.auth,
    readiness: deps.readiness,
    docs: { title: 'CivilDIY feed-service', description: 'Global and per-author activity feeds: the read model built from posts and profile events.' },
    ...(deps.metricsRegistry ? { metricsRegistry: deps.metricsRegistry } : {}),
    ...(deps.logRequests === undefined ? {} : { logRequests: deps.logRequests }),
    ...(deps.http ? { http: deps.http } : {}),
  });
  await app.register(feedApi({ reader: deps.reader, rebuilds: deps.rebuilds }));
  return app;
}
