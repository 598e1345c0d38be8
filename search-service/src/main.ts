import { fileURLToPath } from 'node:url';
import { loadConfigOrExit } from '@civildiy/common';
import { EmbeddingsClient } from '@civildiy/common/providers';
import { startRuntime } from '@civildiy/common/runtime';
import { httpSettings, listen } from '@civildiy/common/service';
import { TaskWorker } from '@civildiy/common/tasks';
import { buildApp } from './app.ts';
import { searchServiceEnv } from './config.ts';
import * as schema from './db/schema.ts';
import { subscribeToPostEvents } from './handlers.ts';
import { IndexBatcher } from './index-batcher.ts';
import { openRowCounts } from './index-status.ts';
import { forgetTombstones } from './post-events.ts';
import { QueryEmbedder } from './query-embedder.ts';
import { handleReindexControl, reindexControl } from './reindex-control.ts';
import { searchMetrics } from './search-metrics.ts';
import { GenerationSwitcher } from './search-reindex.ts';
import { columnDimensions } from './search-state.ts';
import { SemanticSearch } from './semantic-search.ts';

const config = loadConfigOrExit(searchServiceEnv);
const { logger, shutdown, events, database, tasks, readiness } = await startRuntime({
  service: 'search-service',
  config,
  database: {
    schema,
    migrationsFolder: fileURLToPath(new URL('./db/migrations', import.meta.url)),
    url: config.SEARCH_DATABASE_URL,
    extensions: { vector: true },
    thread: config.SEARCH_DB_THREAD,
  },
});
const db = database.db;

const indexed = await columnDimensions(db);
if (indexed !== config.EMBEDDINGS_DIMENSIONS) {
  logger.fatal(
    { EMBEDDINGS_DIMENSIONS: config.EMBEDDINGS_DIMENSIONS, column: indexed },
    `EMBEDDINGS_DIMENSIONS is ${config.EMBEDDINGS_DIMENSIONS} but post_vectors.embedding is vector(${indexed}): another dimension needs a migration and a reindex`,
  );
  await shutdown.run();
  process.exit(78);
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
// Half the shutdown budget: what is left closes the consumers, connections and the database.
shutdown.add('index batcher', () => batcher.close({ timeoutMs: Math.floor(config.SHUTDOWN_TIMEOUT_MS / 2) }));

// Tombstones only have to outlive the events that could still arrive: forget older ones hourly.
const tombstoneSweep = setInterval(() => {
  forgetTombstones(db, config.SEARCH_TOMBSTONE_RETENTION_MS).then(
    (deleted) => deleted > 0 && logger.debug({ deleted }, 'forgot old tombstones'),
    (error: unknown) => logger.warn({ err: error }, 'forgetting old tombstones failed; trying again in an hour'),
  );
}, 3_600_000);
tombstoneSweep.unref();
shutdown.add('tombstone sweep', () => clearInterval(tombstoneSweep));

const switcher = new GenerationSwitcher({ db, intervalMs: config.SEARCH_POLL_MS, logger });
switcher.start();
shutdown.add('reindex switcher', () => switcher.close());

const control = new TaskWorker({ connection: config.REDIS_BROKER_URL, prefix: config.REDIS_KEY_PREFIX, queues: [reindexControl.queue], concurrency: 1, logger });
handleReindexControl(control, {
  db,
  onStarted: () => {
    batcher.wake();
    void switcher.check();
  },
});
await control.start();
shutdown.add('reindex control worker', () => control.close({ timeoutMs: 5_000 }));

const subscription = subscribeToPostEvents({
  subscriber: events.subscriber,
  db,
  textMaxChars: config.SEARCH_TEXT_MAX_CHARS,
  concurrency: config.SEARCH_CONSUMER_CONCURRENCY,
  onQueued: () => batcher.wake(),
});
shutdown.add('posts-events consumer', () => subscription.close());

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
const search = new SemanticSearch({ db, embedder, defaultModel: config.EMBEDDINGS_MODEL, efSearch: config.SEARCH_HNSW_EF_SEARCH, databaseKind: database.kind, maxBatch: config.SEARCH_QUERY_BATCH_MAX, metrics });
const app = await buildApp({ http: httpSettings(config), db, search, logger, auth: { jwksUrl: config.AUTH_JWKS_URL }, readiness, onRedriven: () => batcher.wake() });
await listen(app, { port: config.SEARCH_PORT, host: config.HOST, shutdown });
