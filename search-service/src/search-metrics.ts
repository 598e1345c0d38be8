import { Counter, Gauge, Histogram, register as globalRegistry, type Registry } from 'prom-client';
import { reuseMetric } from '@civildiy/common/service';

/** How a batch ended: stored, failed for good (rows marked failed), given up at shutdown, or broken by an unexpected error (rows return after the lease). */
export type BatchOutcome = 'indexed' | 'failed' | 'abandoned' | 'error';

/** Which search endpoint, and whether it used the HNSW index or an exact scan. */
export interface QueryLabels {
  endpoint: 'search' | 'similar';
  mode: 'hnsw' | 'exact';
}

/** The numbers search-service reports on `/metrics`. */
export interface SearchMetrics {
  batch(outcome: BatchOutcome): void;
  rowsIndexed(count: number): void;
  rowsFailed(count: number): void;
  /** Seconds from sending a batch to having its vectors (the worker's queueing, retries and the provider). */
  embedSeconds(seconds: number): void;
  querySeconds(labels: QueryLabels, seconds: number): void;
  queryEmbeddingCache(result: 'hit' | 'miss'): void;
  /** Searches answered by one database statement (PGlite coalesces those that arrive while one runs). */
  queryBatch(size: number): void;
  /** Post events applied by one transaction of the consumer. */
  eventBatch(size: number): void;
}

/** Open index rows by status, read at scrape time. */
export type OpenRowCounts = () => Promise<{ pending: number; claimed: number; failed: number }>;

const SCRAPE_TIMEOUT_MS = 1_000;

/** Resolves `undefined` instead of failing or hanging a scrape. */
async function within<T>(promise: Promise<T>): Promise<T | undefined> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([promise.catch(() => undefined), new Promise<undefined>((resolve) => (timer = setTimeout(() => resolve(undefined), SCRAPE_TIMEOUT_MS)))]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * search-service's metrics (metrics already in the registry are reused):
 * - `search_index_pending_rows`, `search_index_claimed_rows`, `search_index_failed_rows`: buffer rows by status (read at scrape time)
 * - `search_index_failed_rows_total`: rows marked failed (a batch that failed for good)
 * - `search_index_rows_indexed_total`: rows whose vectors were stored
 * - `search_index_batches_total{outcome}`: batches by outcome (`indexed`, `failed`, `abandoned`, `error`)
 * - `search_embed_batch_duration_seconds`: from sending a batch to its vectors
 * - `search_query_duration_seconds{endpoint,mode}`: searches, query embedding included
 * - `search_query_embedding_cache_total{result}`: query embeddings served from the cache or the provider
 * - `search_query_batch_size`: searches answered by one database statement
 * - `search_event_batch_size`: post events applied by one transaction
 */
export function searchMetrics(options: { openRows?: OpenRowCounts; registry?: Registry } = {}): SearchMetrics {
  const registry = options.registry ?? globalRegistry;
  const batches = reuseMetric(registry, 'search_index_batches_total', () =>
    new Counter({ name: 'search_index_batches_total', help: 'search.embed batches by outcome', labelNames: ['outcome'] as const, registers: [registry] }),
  );
  const indexed = reuseMetric(registry, 'search_index_rows_indexed_total', () =>
    new Counter({ name: 'search_index_rows_indexed_total', help: 'Index rows whose vectors were stored', registers: [registry] }),
  );
  const failed = reuseMetric(registry, 'search_index_failed_rows_total', () =>
    new Counter({ name: 'search_index_failed_rows_total', help: 'Index rows marked failed because their batch failed for good', registers: [registry] }),
  );
  const embed = reuseMetric(registry, 'search_embed_batch_duration_seconds', () =>
    new Histogram({
      name: 'search_embed_batch_duration_seconds',
      help: 'From sending a search.embed batch to having its vectors',
      buckets: [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120],
      registers: [registry],
    }),
  );
  const queries = reuseMetric(registry, 'search_query_duration_seconds', () =>
    new Histogram({
      name: 'search_query_duration_seconds',
      help: 'Search requests (query embedding included) by endpoint and mode',
      labelNames: ['endpoint', 'mode'] as const,
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
      registers: [registry],
    }),
  );
  const cache = reuseMetric(registry, 'search_query_embedding_cache_total', () =>
    new Counter({ name: 'search_query_embedding_cache_total', help: 'Query embeddings from the cache (hit) or the provider (miss)', labelNames: ['result'] as const, registers: [registry] }),
  );

  const queryBatches = reuseMetric(registry, 'search_query_batch_size', () =>
    new Histogram({
      name: 'search_query_batch_size',
      help: 'Searches answered by one database statement (embedded PGlite runs those that arrive while one runs together)',
      buckets: [1, 2, 4, 8, 16, 32, 64],
      registers: [registry],
    }),
  );

  const eventBatches = reuseMetric(registry, 'search_event_batch_size', () =>
    new Histogram({
      name: 'search_event_batch_size',
      help: 'Post events applied by one transaction (the consumer applies the events in hand together)',
      buckets: [1, 2, 4, 8, 16, 32, 64, 128],
      registers: [registry],
    }),
  );

  const openRows = options.openRows;
  if (openRows) {
    let reading: Promise<Awaited<ReturnType<OpenRowCounts>> | undefined> | undefined;
    // One query serves the three gauges of a scrape.
    const counts = () => (reading ??= within(openRows()).finally(() => setTimeout(() => (reading = undefined), 100).unref()));
    for (const status of ['pending', 'claimed', 'failed'] as const) {
      const name = `search_index_${status}_rows`;
      if (registry.getSingleMetric(name)) continue;
      new Gauge({
        name,
        help: `Index rows that are ${status}`,
        registers: [registry],
        async collect() {
          const value = (await counts())?.[status];
          if (value !== undefined) this.set(value);
        },
      });
    }
  }

  return {
    batch: (outcome) => batches.inc({ outcome }),
    rowsIndexed: (count) => indexed.inc(count),
    rowsFailed: (count) => failed.inc(count),
    embedSeconds: (seconds) => embed.observe(seconds),
    querySeconds: (labels, seconds) => queries.observe({ ...labels }, seconds),
    queryEmbeddingCache: (result) => cache.inc({ result }),
    queryBatch: (size) => queryBatches.observe(size),
    eventBatch: (size) => eventBatches.observe(size),
  };
}
