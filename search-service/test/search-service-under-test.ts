import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { eq } from 'drizzle-orm';
import pg from 'pg';
import { Registry } from 'prom-client';
import { isDeepStrictEqual } from 'node:util';
import { createLogger } from '@civildiy/common';
import { embedBatch, postCreated, postDeleted, postUpdated, type PostDeleted, type PostSnapshot } from '@civildiy/common/contracts';
import { openDatabase, type OpenDatabase } from '@civildiy/common/db';
import { RedisStreamsEventBus, type Subscription } from '@civildiy/common/events';
import { EmbeddingsClient } from '@civildiy/common/providers';
import type { App } from '@civildiy/common/service';
import { TaskClient, TaskWorker } from '@civildiy/common/tasks';
import { createTestTokens, newPostSnapshot, providerCall, REDIS_URL, removeRedisPrefix, uniquePrefix, type TestTokens, createTestDatabase } from '@civildiy/common/testing';
import { buildApp } from '../src/app.ts';
import * as schema from '../src/db/schema.ts';
import { subscribeToPostEvents } from '../src/handlers.ts';
import { IndexBatcher, type IndexBatcherOptions } from '../src/index-batcher.ts';
import { openRowCounts } from '../src/index-status.ts';
import { QueryEmbedder } from '../src/query-embedder.ts';
import { ReindexControl, handleReindexControl, reindexControl } from '../src/reindex-control.ts';
import { searchMetrics } from '../src/search-metrics.ts';
import { GenerationSwitcher, prepareIndex, type SpaceFollowed } from '../src/search-reindex.ts';
import type { EmbeddingSpace } from '../src/search-state.ts';
import { SemanticSearch, withHnswSettings } from '../src/semantic-search.ts';

export const migrationsFolder = path.join(path.dirname(fileURLToPath(import.meta.url)), '../src/db/migrations');
export const logger = createLogger({ service: 'search-service', level: process.env.TEST_LOG_LEVEL ?? 'silent' });
export const WAIT = { timeout: 25_000, interval: 50 };

/**
 * Reads `read()` every `interval` ms until it equals `expected` (deep equality), and resolves with
 * it; rejects with the last value read after `timeout` ms. Usable in hooks too (unlike `expect.poll`).
 */
export async function eventually<T>(read: () => Promise<T>, expected: T, what: string, wait = WAIT): Promise<T> {
  const deadline = Date.now() + wait.timeout;
  let last: T | undefined;
  for (;;) {
    last = await read();
    if (isDeepStrictEqual(last, expected)) return last;
    if (Date.now() > deadline) throw new Error(`${what}: expected ${JSON.stringify(expected)}, last read ${JSON.stringify(last)}`);
    await new Promise((resolve) => setTimeout(resolve, wait.interval));
  }
}
export const DIMENSIONS = 256;
/** `SEARCH_HNSW_EF_SEARCH` of the service under test (the default). */
export const EF_SEARCH = 100;
export const MODEL = 'civildiy-hash-embed-1';
/** search-service's default space: the deterministic mock at 256 dimensions. */
export const SPACE: EmbeddingSpace = { model: MODEL, dimensions: DIMENSIONS };

/**
 * Where the suites run their database: PGlite (which ships pgvector) and a Postgres server with
 * pgvector: `SEARCH_TEST_DATABASE_URL` (for example the Compose image, `pgvector/pgvector`), else
 * `POSTGRES_TEST_URL`, else the local server, where `scripts/install-pgvector.sh` installs it.
 */
export const SERVER_URL = process.env.SEARCH_TEST_DATABASE_URL ?? process.env.POSTGRES_TEST_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';
export type SearchDatabaseTarget = 'PGlite' | 'Postgres server with pgvector';

/** What the server suites find at {@link SERVER_URL}. */
export type SearchServer =
  | { status: 'ready'; url: string }
  /** The server has no pgvector (and `CI` is not `true`): skip, printing `reason`. */
  | { status: 'skip'; reason: string }
  /** The server is unreachable, or has no pgvector under `CI=true`: fail with `reason`. */
  | { status: 'failed'; reason: string };

let probed: Promise<SearchServer> | undefined;

/** Whether the server at {@link SERVER_URL} offers the `vector` extension (asked once per test file). */
export function searchServer(): Promise<SearchServer> {
  return (probed ??= (async (): Promise<SearchServer> => {
    const where = new URL(SERVER_URL).host;
    const client = new pg.Client({ connectionString: SERVER_URL });
    try {
      await client.connect();
      const { rowCount } = await client.query("SELECT 1 FROM pg_available_extensions WHERE name = 'vector'");
      if (rowCount === 1) return { status: 'ready', url: SERVER_URL };
      const reason = `the Postgres server at ${where} has no pgvector: run scripts/install-pgvector.sh as root, or set SEARCH_TEST_DATABASE_URL to a server with it`;
      return process.env.CI === 'true' ? { status: 'failed', reason } : { status: 'skip', reason };
    } catch (error) {
      return { status: 'failed', reason: `the Postgres server at ${where} did not answer: ${error instanceof Error ? error.message : String(error)}` };
    } finally {
      await client.end().catch(() => undefined);
    }
  })());
}

/** For a test title: `(skipped: <reason>)` when the server suites skip, else an empty string. */
export function serverSkipNote(server: SearchServer): string {
  return server.status === 'skip' ? `(skipped: ${server.reason})` : '';
}

/** A migrated search database; `url` is set on a server. */
export type SearchDatabase = OpenDatabase<typeof schema> & { url?: string };

/**
 * A migrated search database on `target` (or on the server database `url`); a fresh server
 * database is dropped at close. On the server target it throws the reason when {@link searchServer}
 * is not ready.
 */
export async function openSearchDatabase(target: SearchDatabaseTarget, url?: string): Promise<SearchDatabase> {
  const open = (serverUrl?: string) =>
    openDatabase({ service: 'search-service', dataDir: 'memory://', migrationsFolder, schema, extensions: { vector: true }, ...(serverUrl ? { url: serverUrl } : {}) });
  if (target === 'PGlite') return open();
  if (url) return { ...(await open(url)), url };
  const available = await searchServer();
  if (available.status !== 'ready') throw new Error(available.reason);
  const server = await createTestDatabase(available.url);
  try {
    // As service.ts opens it: every connection starts with the HNSW settings.
    const database = await open(withHnswSettings(server.url, EF_SEARCH));
    return {
      ...database,
      url: server.url,
      close: async () => {
        await database.close();
        await server.drop();
      },
    };
  } catch (error) {
    await server.drop();
    throw error;
  }
}

/**
 * The worker's `search.embed` as the worker process runs it: one provider call per batch through
 * the real EmbeddingsClient (in `space`, the worker's EMBEDDINGS_MODEL and EMBEDDINGS_DIMENSIONS;
 * default {@link SPACE}), each vector paired with its text's id.
 */
export function handleEmbeddings(worker: TaskWorker, options: { embeddingsUrl: string; task?: typeof embedBatch; space?: EmbeddingSpace }): void {
  const { model, dimensions } = options.space ?? SPACE;
  const embeddings = new EmbeddingsClient({ baseUrl: options.embeddingsUrl, model, dimensions, timeoutMs: 5_000, breaker: { consecutiveFailures: 5, halfOpenAfterMs: 200 } });
  worker.handle(options.task ?? embedBatch, async (batch, ctx) => {
    const result = await embeddings.embed(batch.texts.map((text) => text.text), { signal: ctx.signal });
    return { batchId: batch.batchId, model: result.model, dimensions: result.dimensions, vectors: batch.texts.map((text, i) => ({ id: text.id, embedding: result.vectors[i]! })) };
  });
}

/** Sets the embeddings provider's injected faults (`{}` = none). */
export async function setEmbeddingFaults(embeddingsUrl: string, faults: { failNext?: number; failureRate?: number; latencyMs?: number }): Promise<void> {
  await providerCall(`${embeddingsUrl}/_admin/faults`, { method: 'PUT', body: faults });
}

/** The embeddings provider's counters. */
export async function embeddingStats(embeddingsUrl: string): Promise<{ callsReceived: number; failuresInjected: number; embeddingsCreated: number }> {
  return providerCall(`${embeddingsUrl}/_admin/stats`);
}

export interface StartOptions {
  target?: SearchDatabaseTarget;
  /** An open search database to run on (a restart); left open at close. Default: a fresh one on `target`. */
  database?: SearchDatabase;
  /** search-service's EMBEDDINGS_MODEL and EMBEDDINGS_DIMENSIONS. Default {@link SPACE}. */
  space?: EmbeddingSpace;
  /** The test worker's. Default: `space`. */
  workerSpace?: EmbeddingSpace;
  embeddingsUrl: string;
  /** The embedding task the batcher sends and the test worker runs. Default `search.embed`. */
  task?: typeof embedBatch;
  /** Start the batcher at once (default true). */
  startBatcher?: boolean;
  batcher?: Partial<Pick<IndexBatcherOptions, 'batchSize' | 'concurrency' | 'leaseMs' | 'pollMs'>>;
  queryCacheMs?: number;
}

/**
 * search-service as main.ts wires it, under a Redis prefix of its own: the posts-events consumer,
 * the batcher sending `search.embed`, a task worker running it against the mock provider (the
 * worker process's code path), the reindex control worker and switcher, and the HTTP app.
 */
export interface SearchServiceUnderTest {
  prefix: string;
  database: SearchDatabase;
  /** What the start did to follow `options.space` (see `prepareIndex`). */
  prepared: SpaceFollowed;
  db: SearchDatabase['db'];
  bus: RedisStreamsEventBus;
  tasks: TaskClient;
  app: App;
  tokens: TestTokens;
  registry: Registry;
  batcher: IndexBatcher;
  /** Another batcher on this service's database (or on `options.db`), closed with the rest. */
  addBatcher(options?: Partial<IndexBatcherOptions>): IndexBatcher;
  /** Publishes a post event as posts-service does. */
  created(post: PostSnapshot): Promise<string>;
  updated(post: PostSnapshot): Promise<string>;
  deleted(deletion: PostDeleted): Promise<string>;
  /** Resolves once the consumer has processed the event (its inbox row exists). */
  processed(eventId: string): Promise<void>;
  /** `GET url` with an operator's access token. */
  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- answers of every route, read field by field in the tests
  get<T = any>(url: string): Promise<{ status: number; body: T }>;
  /** Ids of `GET /search?q=…` results, in order. */
  searchIds(q: string, query?: string): Promise<string[]>;
  /** Waits until the index has no pending or claimed row and `done` rows in the active generation. */
  indexed(done: number): Promise<void>;
  close(): Promise<void>;
}

export async function startSearchService(name: string, options: StartOptions): Promise<SearchServiceUnderTest> {
  const prefix = uniquePrefix(`search-${name}`);
  const database = options.database ?? (await openSearchDatabase(options.target ?? 'PGlite'));
  const db = database.db;
  const space = options.space ?? SPACE;
  const prepared = await prepareIndex(db, space, logger);
  const bus = new RedisStreamsEventBus({ connection: REDIS_URL, prefix: `${prefix}:`, logger, blockMs: 100 });
  const tasks = new TaskClient({ connection: REDIS_URL, prefix, logger });
  const registry = new Registry();
  const metrics = searchMetrics({ registry, openRows: () => openRowCounts(db) });
  const task = options.task ?? embedBatch;

  const worker = new TaskWorker({ connection: REDIS_URL, prefix, queues: [task.queue, reindexControl.queue], concurrency: 4, logger });
  handleEmbeddings(worker, { embeddingsUrl: options.embeddingsUrl, task, space: options.workerSpace ?? space });
  const batchers: IndexBatcher[] = [];
  const addBatcher = (extra: Partial<IndexBatcherOptions> = {}) => {
    const batcher = new IndexBatcher({ db, tasks, task, space, logger, metrics, pollMs: 200, ...options.batcher, ...extra });
    batchers.push(batcher);
    return batcher;
  };
  const batcher = addBatcher();
  const switcher = new GenerationSwitcher({ db, intervalMs: 100, logger });
  const reindex = new ReindexControl({
    db,
    space,
    wake: () => {
      batcher.wake();
      void switcher.check();
    },
  });
  handleReindexControl(worker, reindex);
  await worker.start();
  switcher.start();
  if (options.startBatcher ?? true) batcher.start();

  const subscription: Subscription = subscribeToPostEvents({ subscriber: bus, db, textMaxChars: 4_000, concurrency: 8, onQueued: () => batcher.wake() });
  await subscription.ready;

  const embedder = new QueryEmbedder({
    embedderFor: ({ model, dimensions }) => new EmbeddingsClient({ baseUrl: options.embeddingsUrl, model, dimensions, timeoutMs: 2_000, breaker: false }),
    cacheMs: options.queryCacheMs ?? 60_000,
    cacheSize: 100,
    metrics,
  });
  const search = new SemanticSearch({ db, embedder, defaultSpace: space, efSearch: EF_SEARCH, databaseKind: database.kind, settingsInConnections: database.kind === 'postgres', metrics });
  const tokens = await createTestTokens();
  const app = await buildApp({ db, search, logger, auth: tokens.keys, readiness: { database: () => database.ping() }, reindex, onRedriven: () => batcher.wake(), metricsRegistry: registry, logRequests: false });
  await app.ready();

  // As an operator: the index routes need the role, the search routes ignore the token. Signed
  // once, so that requests sent together still arrive together (search coalescing is tested so).
  const authorization = `Bearer ${await tokens.token(undefined, { expiresIn: '1h', roles: ['operator'] })}`;
  const get = async (url: string) => {
    const response = await app.inject({ method: 'GET', url, headers: { authorization } });
    return { status: response.statusCode, body: response.json() };
  };
  return {
    prefix,
    database,
    prepared,
    db,
    bus,
    tasks,
    app,
    tokens,
    registry,
    batcher,
    addBatcher,
    created: async (post) => (await bus.publish(postCreated, post)).id,
    updated: async (post) => (await bus.publish(postUpdated, post)).id,
    deleted: async (deletion) => (await bus.publish(postDeleted, deletion)).id,
    processed: async (eventId) => {
      await eventually(async () => (await db.select().from(schema.inboxTable).where(eq(schema.inboxTable.eventId, eventId))).length, 1, `event ${eventId} processed`);
    },
    get,
    searchIds: async (q, query = '') => {
      const { status, body } = await get(`/search?q=${encodeURIComponent(q)}${query}`);
      if (status !== 200) throw new Error(`GET /search answered ${status}: ${JSON.stringify(body)}`);
      return (body as { items: { postId: string }[] }).items.map((item) => item.postId);
    },
    indexed: async (done) => {
      await eventually(async () => (await get('/search/index/status')).body.counts, { pending: 0, claimed: 0, done, failed: 0 }, 'rows of the active generation');
    },
    close: async () => {
      await subscription.close();
      await Promise.all(batchers.map((each) => each.close({ timeoutMs: 0 })));
      await switcher.close();
      await worker.close({ timeoutMs: 1_000 });
      await app.close();
      await tasks.close();
      await bus.close();
      if (!options.database) await database.close();
      await removeRedisPrefix(prefix);
    },
  };
}

/** A new post at version 1 (see `newPostSnapshot`). */
export const newPost = newPostSnapshot;

/** The post edited: the next version with `changes`. */
export function edited(post: PostSnapshot, changes: Partial<Pick<PostSnapshot, 'title' | 'body' | 'tags'>>): PostSnapshot {
  return { ...post, ...changes, version: post.version + 1, updatedAt: new Date(Date.parse(post.updatedAt) + 1_000).toISOString() };
}

/** The post deleted: the delete's data at the next version. */
export function deletion(post: PostSnapshot): PostDeleted {
  return { postId: post.postId, authorId: post.authorId, version: post.version + 1, reason: 'author', deletedAt: new Date(Date.parse(post.updatedAt) + 1_000).toISOString() };
}
