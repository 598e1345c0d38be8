import { z } from 'zod';
import { baseEnv, envBool, envInt } from '@civildiy/common';
import { MAX_INDEXED_DIMENSIONS } from './hnsw-index.ts';

/** search-service environment (see .env.example). */
export const searchServiceEnv = baseEnv.extend({
  SEARCH_PORT: envInt(0, 65535).default(8107).describe('the HTTP port of search-service'),
  SEARCH_DATABASE_URL: z
    .string()
    // A URL: its startup options get the HNSW settings (withHnswSettings).
    .refine((value) => URL.canParse(value), { message: 'not a URL' })
    .optional()
    .describe('a postgres:// URL of a server WITH pgvector; unset = embedded PGlite (pgvector included) in DATA_DIR/search-service'),
  SEARCH_DB_THREAD: envBool
    .default(true)
    .describe('embedded PGlite only: run the database on its own worker thread, so HNSW searches do not block HTTP handling (uses a second core)'),
  EMBEDDINGS_URL: z.url().default('http://127.0.0.1:8001').describe('the OpenAI-compatible embeddings provider search queries are embedded with (the mock provider by default)'),
  EMBEDDINGS_MODEL: z
    .string()
    .min(1)
    .max(256)
    .default('civildiy-hash-embed-1')
    .describe(
      "the embedding model posts and queries are embedded with (the worker's EMBEDDINGS_MODEL must be the same; npm start sets both to all-minilm-l6-v2-q when that model runs and neither this nor EMBEDDINGS_DIMENSIONS is set); after a change search-service reindexes by itself, serving the previous model's vectors until the new ones are complete",
    ),
  EMBEDDINGS_API_KEY: z.string().optional().describe('the bearer key of the embeddings provider (unset for the mock provider)'),
  EMBEDDINGS_DIMENSIONS: envInt(1, MAX_INDEXED_DIMENSIONS)
    .default(256)
    .describe(
      `the vector dimension of EMBEDDINGS_MODEL (the worker's must be the same), 1 to ${MAX_INDEXED_DIMENSIONS} (pgvector's HNSW limit); a change reindexes as EMBEDDINGS_MODEL does`,
    ),
  EMBEDDINGS_TIMEOUT_MS: envInt(100, 120_000).default(3_000).describe('how long a search request waits for the provider to embed its query (ms)'),
  SEARCH_BATCH_SIZE: envInt(1, 256).default(32).describe('posts per search.embed task'),
  SEARCH_BATCH_CONCURRENCY: envInt(1, 64).default(4).describe('search.embed batches one search-service process has in flight at once'),
  SEARCH_LEASE_MS: envInt(1_000, 3_600_000)
    .default(60_000)
    .describe('how long claimed index rows stay with their claimer without a renewal (ms); a crashed claimer’s rows are taken over after it'),
  SEARCH_POLL_MS: envInt(50, 600_000).default(2_000).describe('how often the batcher looks for index work when nothing woke it (ms)'),
  SEARCH_CONSUMER_CONCURRENCY: envInt(1, 256).default(64).describe('post events handled at a time (one post at a time still), applied together in one transaction per batch'),
  SEARCH_TEXT_MAX_CHARS: envInt(200, 32_000).default(4_000).describe('the text embedded per post (title, tags, body) is cut to this many characters'),
  SEARCH_QUERY_CACHE_MS: envInt(0, 86_400_000).default(60_000).describe('how long an embedded search query is reused (ms); 0 disables the cache'),
  SEARCH_QUERY_CACHE_SIZE: envInt(1, 1_000_000).default(1_000).describe('embedded search queries kept in memory (least recently used go first)'),
  SEARCH_HNSW_EF_SEARCH: envInt(1, 1_000)
    .default(100)
    .describe('pgvector hnsw.ef_search: candidates the HNSW index examines per query (higher = better recall, slower); at least the limit asked for'),
  SEARCH_QUERY_BATCH_MAX: envInt(1, 256)
    .default(16)
    .describe('embedded PGlite only: searches that arrive while one runs are answered by one statement, at most this many (1 = one statement per search)'),
  SEARCH_TOMBSTONE_RETENTION_MS: envInt(60_000, 365 * 24 * 3_600_000)
    .default(8 * 24 * 3_600_000)
    .describe('how long a deleted post is remembered, so a late create cannot bring it back (ms; events are kept 7 days)'),
  SEARCH_REINDEX_PROGRESS_MS: envInt(50, 600_000).default(2_000).describe('how often `npm run search:reindex` reports its progress (ms)'),
});
export type SearchServiceConfig = z.infer<typeof searchServiceEnv>;
