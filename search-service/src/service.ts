import { fileURLToPath } from 'node:url';
import { ConfigError } from '@civildiy/common';
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
import { GenerationSwitcher } from './search-reindex.ts';
import { columnDimensions } from './search-state.ts';
import { SemanticSearch } from './semantic-search.ts';

/** Semantic search over posts: `posts-events` → index queue → batched `search.embed` → pgvector; queries by text or by post. */
export const searchService = defineService({
  name: 'search-service',
  env: searchServiceEnv,
  database: (config) => ({
    schema,
    migrationsFolder: fileURLToPath(new URL('./db/migrations', import.meta.url)),
    url: config.SEARCH_DATABASE_URL,
    extensions: { vector: true },
    thread: config.SEARCH_DB_THREAD,
  }),
  build: async ({ config, db, database, logger, events, tasks, readiness }) => {
    const indexed = await columnDimensions(db);
    if (indexed !== config.EMBEDDINGS_DIMENSIONS) {
      throw new ConfigError([
        {
          variable: 'EMBEDDINGS_DIMENSIONS',
          expected: `${indexed}, the size of the migrated column (post_vectors.embedding is vector(${indexed})), not ${config.EMBEDDINGS_DIMENSIONS}: another dimension needs a migration and a reindex`,
        },
      ]);
    }
    const metrics = searchMetrics({ openRows: () => openRowCounts(db) });
    const batcher = new IndexBatcher({
      db,
      tasks,
      dimensions: config.EMBEDDINGS_DIMENSIONS,
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
      embedderFor: (model) =>
        new EmbeddingsClient({
          baseUrl: config.EMBEDDINGS_URL,
          model,
          dimensions: config.EMBEDDINGS_DIMENSIONS,
          timeoutMs: config.EMBEDDINGS_TIMEOUT_MS,
          logger,
          ...(config.EMBEDDINGS_API_KEY ? { apiKey: config.EMBEDDINGS_API_KEY } : {}),
        }),
      dimensions: config.EMBEDDINGS_DIMENSIONS,
      cacheMs: config.SEARCH_QUERY_CACHE_MS,
      cacheSize: config.SEARCH_QUERY_CACHE_SIZE,
      metrics,
    });
    const reindex = new ReindexControl({
      db,
      wake: () => {
        batcher.wake();
        void switcher.check();
      },
    });
    const search = new SemanticSearch({ db, embedder, defaultModel: config.EMBEDDINGS_MODEL, efSearch: config.SEARCH_HNSW_EF_SEARCH, databaseKind: database.kind, maxBatch: config.SEARCH_QUERY_BATCH_MAX, metrics });
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
