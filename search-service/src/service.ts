import { fileURLToPath } from 'node:url';
import { EmbeddingsClient } from '@civildiy/common/providers';
import { defineService } from '@civildiy/common/runtime';
import { httpSettings } from '@civildiy/common/service';
import { buildApp } from './app.ts';
import { searchServiceEnv } from './config.ts';
import * as schema from './db/schema.ts';
import { subscribeToPostEvents } from './handlers.ts';
import { IndexBatcher } from './index-batcher.ts';
import { openRowCounts } from './index-status.ts';
import { forgetTombstones } from './post-events.ts';
import { QueryEmbedder } from './query-embedder.ts';
import { ReindexControl, handleReindexControl, reindexControl } from './reindex-control.ts';
import { searchMetrics } from './search-metrics.ts';
import { GenerationSwitcher, prepareIndex } from './search-reindex.ts';
import { SemanticSearch, withHnswSettings } from './semantic-search.ts';

/** Semantic search over posts: `posts-events` → index queue → batched `search.embed` → pgvector; queries by text or by post. */
export const searchService = defineService({
  name: 'search-service',
  env: searchServiceEnv,
  database: (config) => ({
    schema,
    migrationsFolder: fileURLToPath(new URL('./db/migrations', import.meta.url)),
    // On a server every connection starts with the HNSW settings, so a search needs no transaction to set them.
    url: config.SEARCH_DATABASE_URL === undefined ? undefined : withHnswSettings(config.SEARCH_DATABASE_URL, config.SEARCH_HNSW_EF_SEARCH),
    extensions: { vector: true },
    thread: config.SEARCH_DB_THREAD,
  }),
  build: async ({ config, db, database, logger, events, tasks, readiness }) => {
    // The worker embeds in this space too (npm start gives both the same EMBEDDINGS_MODEL and EMBEDDINGS_DIMENSIONS).
    const space = { model: config.EMBEDDINGS_MODEL, dimensions: config.EMBEDDINGS_DIMENSIONS };
    // Another space than the index holds starts a reindex into it; the old generation serves meanwhile.
    await prepareIndex(db, space, logger);
    const metrics = searchMetrics({ openRows: () => openRowCounts(db) });
    const batcher = new IndexBatcher({
      db,
      tasks,
      space,
      batchSize: config.SEARCH_BATCH_SIZE,
      concurrency: config.SEARCH_BATCH_CONCURRENCY,
      leaseMs: config.SEARCH_LEASE_MS,
      pollMs: config.SEARCH_POLL_MS,
      logger,
      metrics,
    });
    batcher.start();
    const switcher = new GenerationSwitcher({ db, intervalMs: config.SEARCH_POLL_MS, logger });
    switcher.start();
    const embedder = new QueryEmbedder({
      // Queries are embedded in the space of the generation searched, which may be the one before a change.
      embedderFor: ({ model, dimensions }) =>
        new EmbeddingsClient({
          baseUrl: config.EMBEDDINGS_URL,
          model,
          dimensions,
          timeoutMs: config.EMBEDDINGS_TIMEOUT_MS,
          logger,
          ...(config.EMBEDDINGS_API_KEY ? { apiKey: config.EMBEDDINGS_API_KEY } : {}),
        }),
      cacheMs: config.SEARCH_QUERY_CACHE_MS,
      cacheSize: config.SEARCH_QUERY_CACHE_SIZE,
      metrics,
    });
    const reindex = new ReindexControl({
      db,
      space,
      wake: () => {
        batcher.wake();
        void switcher.check();
      },
    });
    const search = new SemanticSearch({
      db,
      embedder,
      defaultSpace: space,
      efSearch: config.SEARCH_HNSW_EF_SEARCH,
      databaseKind: database.kind,
      settingsInConnections: database.kind === 'postgres',
      maxBatch: config.SEARCH_QUERY_BATCH_MAX,
      metrics,
    });
    return {
      background: { 'index batcher': batcher, 'reindex switcher': switcher },
      // Tombstones only have to outlive the events that could still arrive.
      timers: {
        'tombstone sweep': {
          everyMs: 3_600_000,
          run: async () => {
            const deleted = await forgetTombstones(db, config.SEARCH_TOMBSTONE_RETENTION_MS);
            if (deleted > 0) logger.debug({ deleted }, 'forgot old tombstones');
          },
        },
      },
      tasks: {
        queues: [reindexControl.queue],
        concurrency: 1,
        handle: (worker) => handleReindexControl(worker, reindex),
      },
      consumers: {
        'posts-events': subscribeToPostEvents({
          subscriber: events.subscriber,
          db,
          textMaxChars: config.SEARCH_TEXT_MAX_CHARS,
          concurrency: config.SEARCH_CONSUMER_CONCURRENCY,
          onQueued: () => batcher.wake(),
          onBatch: (size) => metrics.eventBatch(size),
        }),
      },
      http: [
        {
          app: await buildApp({ http: httpSettings(config), db, search, logger, auth: { jwksUrl: config.AUTH_JWKS_URL }, readiness, reindex, onRedriven: () => batcher.wake() }),
          port: config.SEARCH_PORT,
        },
      ],
    };
  },
});
