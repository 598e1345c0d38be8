import type { Logger } from '@civildiy/common';
import { createServiceApp, type App, type HttpSettings, type KeySource, type ReadinessCheck } from '@civildiy/common/service';
import type { Registry } from 'prom-client';
import { searchApi } from './api.ts';
import type { ReindexControl } from './reindex-control.ts';
import type { SemanticSearch } from './semantic-search.ts';
import type { SearchDb } from './search-state.ts';

/** What search-service's HTTP app needs. */
export interface SearchAppDeps {
  db: SearchDb;
  search: SemanticSearch;
  logger: Logger;
  /** Verifies the tokens of the operations routes (`/search/index/...`, operator role). */
  auth: KeySource;
  readiness: Record<string, ReadinessCheck>;
  /** Called after a redrive queued rows again (wakes the batcher). */
  onRedriven: () => void;
  /** Starts, reports and aborts a reindex (`/search/index/reindex`). */
  reindex: ReindexControl;
  /** Where `/metrics` reads from. Default: prom-client's global registry. */
  metricsRegistry?: Registry;
  logRequests?: boolean;
  /** Admission limits, deadlines, trusted proxies: `httpSettings(config)` (defaults in tests). */
  http?: Partial<HttpSettings>;
}

/** search-service's Fastify app (not listening). */
export async function buildApp(deps: SearchAppDeps): Promise<App> {
  const app = await createServiceApp({
    name: 'search-service',
    logger: deps.logger,
    auth: deps.auth,
    readiness: deps.readiness,
    docs: { title: 'CivilDIY search-service', description: 'Semantic search over posts: pgvector, a buffer table and batched embedding on the worker.' },
    ...(deps.metricsRegistry ? { metricsRegistry: deps.metricsRegistry } : {}),
    ...(deps.logRequests === undefined ? {} : { logRequests: deps.logRequests }),
    ...(deps.http ? { http: deps.http } : {}),
  });
  await app.register(searchApi({ db: deps.db, search: deps.search, onRedriven: deps.onRedriven, reindex: deps.reindex }));
  return app;
}
