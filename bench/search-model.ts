/**
 * Search with the real embedding model (all-MiniLM-L6-v2, int8 ONNX, 384 dimensions, served by
 * mock-providers with EMBEDDINGS_PROVIDER=model), on real processes:
 *
 * 1. The provider alone (`POST /v1/embeddings`): texts/s with requests of 1, 8 and 32 post-sized
 *    texts (CLIENTS closed-loop clients each), the latency of one short query's embedding at 16
 *    clients (p50/p99), and the memory of mock-providers with the model's own process when it
 *    runs (RSS and PSS, /proc/<pid>/smaps_rollup): with the mock only (EMBEDDINGS_PROVIDER=mock),
 *    with the model's files checked but the model not loaded, loaded by one request, after that
 *    load, and after the model unloaded (a keep-alive of 5 s here, 5 min by default).
 * 2. Relevance: recall@5 and MRR of the DIY relevance set (mock-providers/test/fixtures/relevance,
 *    questions that mostly share no word with their post) through the provider's HTTP API, the
 *    model and the deterministic mock side by side.
 * 3. Search end to end (auth, posts, search-service, worker(s), mock-providers) on a Postgres server
 *    with pgvector (BENCH_SEARCH_SERVER_URL): search-service's migrations create a vector(256)
 *    column and it refuses another EMBEDDINGS_DIMENSIONS, so this benchmark migrates a fresh
 *    database itself and changes the column to vector(384) (with its HNSW index) before
 *    search-service starts: what a dimension migration in search-service would do. Indexing
 *    posts/s with 1 and 2 worker processes (INDEX_POSTS posts waiting in posts-events, then
 *    search-service starts), then query p50/p99 at 16 clients over SEARCH_POSTS posts, each query
 *    embedded by the model (search-service's query cache is off, so every query is embedded).
 *
 * `npx tsx --conditions=civildiy-source bench/search-model.ts` prints tables; `run()` returns the figures.
 * Env: BENCH_MODEL_SECONDS (8), BENCH_MODEL_CLIENTS (4), BENCH_MODEL_INDEX_POSTS (1000; 0 skips part 3),
 * BENCH_MODEL_SEARCH_POSTS (1000), BENCH_SEARCH_SERVER_URL (as bench/search.ts), DATA_DIR (where the
 * model is kept, fetched on first use: .data/models).
 */
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { pathToFileURL } from 'node:url';
import { openDatabase } from '@civildiy/common/db';
import { createTestDatabase, repositoryRoot, type SystemService } from '@civildiy/common/testing';
import { DEFAULT_HUB_URL, locateModelFiles, MODEL_DIMENSIONS, MODEL_ID, type ModelFiles } from 'mock-providers/model-files';
import pg from 'pg';
// The relevance set and its scoring are the model tests' own (one definition, two uses).
import { evaluateRelevance, loadRelevanceSet } from 'mock-providers/relevance';
import { post as generatedPost, queries as generatedQueries, random } from './search.ts';
import { treeMemory } from './proc-memory.ts';
import { call, loginUser, printTable, registerUser, startSlice, stopAll, summary, type Slice } from './system.ts';

const SECONDS = Number(process.env.BENCH_MODEL_SECONDS ?? 8);
const CLIENTS = Number(process.env.BENCH_MODEL_CLIENTS ?? 4);
const QUERY_CLIENTS = 16;
const INDEX_POSTS = Number(process.env.BENCH_MODEL_INDEX_POSTS ?? 1_000);
const SEARCH_POSTS = Number(process.env.BENCH_MODEL_SEARCH_POSTS ?? 1_000);
const WRITERS = 8;
const SERVER_URL = process.env.BENCH_SEARCH_SERVER_URL ?? process.env.POSTGRES_TEST_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';

/** The environment every process of a model system gets (the worker and search-service read the EMBEDDINGS_* of clients). */
const modelEnv = (files: ModelFiles) => ({
  EMBEDDINGS_PROVIDER: 'model',
  EMBEDDINGS_MODEL_PATH: files.dir,
  EMBEDDINGS_MODEL: MODEL_ID,
  EMBEDDINGS_DIMENSIONS: String(MODEL_DIMENSIONS),
});

interface Memory {
  processes: number;
  rssMiB: number;
  pssMiB: number;
}

/** RSS and PSS of mock-providers with the model's process when it runs (its child), from /proc/<pid>/smaps_rollup. */
const memoryOf = (pid: number): Promise<Memory> => treeMemory(pid);

/** Waits until the provider's metrics say the model is unloaded (`civildiy_embeddings_model_loaded 0`). */
async function waitUnloaded(url: string): Promise<void> {
  for (let attempt = 0; attempt < 600; attempt++) {
    const metrics = await (await fetch(`${url}/metrics`)).text();
    if (/^civildiy_embeddings_model_loaded 0$/m.test(metrics)) return;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error(`the model at ${url} did not unload`);
}

async function embed(url: string, body: Record<string, unknown>): Promise<{ vectors: number[][]; tokens: number }> {
  const response = await fetch(`${url}/v1/embeddings`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  const answer = (await response.json()) as { data?: { embedding: number[] }[]; usage?: { prompt_tokens: number }; error?: unknown };
  if (response.status !== 200) throw new Error(`POST /v1/embeddings: ${response.status} ${JSON.stringify(answer.error)}`);
  return { vectors: answer.data!.map((item) => item.embedding), tokens: answer.usage!.prompt_tokens };
}

async function waitReady(url: string): Promise<void> {
  for (let attempt = 0; attempt < 600; attempt++) {
    if ((await fetch(`${url}/health/ready`).catch(() => undefined))?.status === 200) return;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error(`${url} did not get ready`);
}

/** Post-sized texts (title, tags, body as search-service embeds them), seeded. */
function postTexts(count: number, seed: number): string[] {
  const next = random(seed);
  return Array.from({ length: count }, () => {
    const post = generatedPost(next);
    return [post.title, post.tags.join(' '), post.body].join('\n\n');
  });
}

/** `clients` closed-loop clients sending `batch` texts per request for SECONDS. */
async function throughput(url: string, batch: number, clients: number, texts: string[]) {
  const latencies: number[] = [];
  let embedded = 0;
  let tokens = 0;
  let next = 0;
  const deadline = performance.now() + SECONDS * 1000;
  const started = performance.now();
  await Promise.all(
    Array.from({ length: clients }, async () => {
      while (performance.now() < deadline) {
        const input = Array.from({ length: batch }, () => texts[next++ % texts.length]!);
        const sent = performance.now();
        const answer = await embed(url, { model: MODEL_ID, input });
        latencies.push(performance.now() - sent);
        embedded += input.length;
        tokens += answer.tokens;
      }
    }),
  );
  const seconds = (performance.now() - started) / 1000;
  const stats = summary(latencies);
  return { textsPerRequest: batch, clients, requests: stats.n, textsPerSecond: Math.round(embedded / seconds), tokensPerText: Math.round(tokens / embedded), p50ms: Number(stats.p50.toFixed(1)), p99ms: Number(stats.p99.toFixed(1)) };
}

/** The provider part's keep-alive: long enough to stay loaded between its rounds, short enough to see the unload. */
const PROVIDER_KEEP_ALIVE_MS = 5_000;

async function providerPart(files: ModelFiles) {
  const mockOnly = await startSlice({ services: ['mock-providers'], env: { EMBEDDINGS_PROVIDER: 'mock' } });
  let mockIdle: Memory;
  try {
    await waitReady(mockOnly.urls.embeddings);
    await embed(mockOnly.urls.embeddings, { input: 'warm up' });
    mockIdle = await memoryOf(mockOnly.processes.get('mock-providers')!.child.pid!);
  } finally {
    await mockOnly.stop();
  }

  const system = await startSlice({ services: ['mock-providers'], env: { ...modelEnv(files), EMBEDDINGS_MODEL_KEEP_ALIVE_MS: String(PROVIDER_KEEP_ALIVE_MS) } });
  try {
    const url = system.urls.embeddings;
    const pid = system.processes.get('mock-providers')!.child.pid!;
    const loadStarted = performance.now();
    await waitReady(url);
    const readySeconds = (performance.now() - loadStarted) / 1000;
    const checked = await memoryOf(pid);
    await embed(url, { input: 'warm up' });
    const idle = await memoryOf(pid);

    const texts = postTexts(500, 99);
    const rows = [];
    for (const batch of [1, 8, 32]) rows.push(await throughput(url, batch, CLIENTS, texts));
    console.log(`\n--- the provider alone: texts/s at 1, 8 and 32 texts per request (${CLIENTS} clients, ${SECONDS} s each; post-sized texts)`);
    printTable(rows);

    const queries = generatedQueries(200);
    const queryRow = await throughput(url, 1, QUERY_CLIENTS, queries);
    console.log(`\n--- one query's embedding at ${QUERY_CLIENTS} clients (${SECONDS} s)`);
    printTable([queryRow]);

    const afterLoad = await memoryOf(pid);
    await waitUnloaded(url);
    const unloaded = await memoryOf(pid);
    const memory = [
      { state: 'mock only (EMBEDDINGS_PROVIDER=mock), idle', ...mockIdle },
      { state: 'model: files checked, not loaded yet', ...checked },
      { state: 'model loaded (one request), idle', ...idle },
      { state: 'model, after the load above', ...afterLoad },
      { state: `model unloaded (EMBEDDINGS_MODEL_KEEP_ALIVE_MS=${PROVIDER_KEEP_ALIVE_MS} here)`, ...unloaded },
    ];
    console.log('\n--- the mock-providers process (three providers) and the model\'s process when it runs');
    printTable(memory);

    const set = loadRelevanceSet();
    const real = await evaluateRelevance(set, async (input) => (await embed(url, { model: MODEL_ID, input })).vectors);
    const mock = await evaluateRelevance(set, async (input) => (await embed(url, { model: 'civildiy-hash-embed-1', input })).vectors);
    const relevance = [
      // Strings: printTable shows numbers with one decimal.
      { embeddings: `${MODEL_ID} (${MODEL_DIMENSIONS})`, posts: set.posts.length, questions: set.queries.length, recallAt5: real.recallAt5.toFixed(3), mrr: real.mrr.toFixed(3) },
      { embeddings: 'civildiy-hash-embed-1 (256, the mock)', posts: set.posts.length, questions: set.queries.length, recallAt5: mock.recallAt5.toFixed(3), mrr: mock.mrr.toFixed(3) },
    ];
    console.log('\n--- relevance: DIY questions as a person asks them (most share no word with the right post)');
    printTable(relevance);
    return { readySeconds: Number(readySeconds.toFixed(2)), throughput: rows, queryEmbedding: queryRow, memory, relevance };
  } finally {
    await system.stop();
  }
}

/** Why the server cannot hold search-service's database, or undefined when it can. */
async function serverMissing(): Promise<string | undefined> {
  const client = new pg.Client({ connectionString: SERVER_URL });
  try {
    await client.connect();
    const { rowCount } = await client.query("SELECT 1 FROM pg_available_extensions WHERE name = 'vector'");
    return rowCount === 1 ? undefined : 'it has no pgvector (scripts/install-pgvector.sh installs it)';
  } catch (error) {
    return `it did not answer (${error instanceof Error ? error.message : String(error)})`;
  } finally {
    await client.end().catch(() => undefined);
  }
}

/** Runs search-service's migrations on `url`, then makes the embedding column (and its HNSW index) vector(384). */
async function migrateTo384(url: string): Promise<void> {
  const database = await openDatabase({
    service: 'search-service',
    url,
    dataDir: path.join(repositoryRoot, '.data'),
    migrationsFolder: path.join(repositoryRoot, 'search-service', 'src', 'db', 'migrations'),
    extensions: { vector: true },
  });
  await database.close();
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    const { rows } = await client.query<{ indexname: string; indexdef: string }>("SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'post_vectors' AND indexdef LIKE '%hnsw%'");
    await client.query('BEGIN');
    for (const index of rows) await client.query(`DROP INDEX "${index.indexname}"`);
    await client.query(`ALTER TABLE post_vectors ALTER COLUMN embedding TYPE vector(${MODEL_DIMENSIONS})`);
    for (const index of rows) await client.query(index.indexdef);
    await client.query('COMMIT');
  } finally {
    await client.end();
  }
}

async function withModelSystem<T>(files: ModelFiles, services: SystemService[], measure: (system: Slice) => Promise<T>): Promise<T> {
  const server = await createTestDatabase(SERVER_URL);
  try {
    await migrateTo384(server.url);
    // SEARCH_QUERY_CACHE_MS=0: every query is embedded, as distinct queries from many users are.
    const system = await startSlice({ services, env: { ...modelEnv(files), SEARCH_DATABASE_URL: server.url, SEARCH_QUERY_CACHE_MS: '0', WORKER_CONCURRENCY: '8' } });
    try {
      await waitReady(system.urls.embeddings);
      return await measure(system);
    } finally {
      await system.stop();
    }
  } finally {
    await server.drop();
  }
}

const SYSTEM: SystemService[] = ['mock-providers', 'auth-service', 'posts-service', 'search-service', 'worker'];

async function operator(system: Slice): Promise<string> {
  const user = await registerUser(system.urls.auth, 'bench');
  await system.grantRole(user.email);
  return loginUser(system.urls.auth, user.email);
}

async function writePosts(system: Slice, token: string, count: number, seed: number): Promise<void> {
  const next = random(seed);
  const bodies = Array.from({ length: count }, () => generatedPost(next));
  let index = 0;
  await Promise.all(
    Array.from({ length: WRITERS }, async () => {
      while (index < bodies.length) {
        const response = await call(`${system.urls.posts}/posts`, { token, body: bodies[index++]! });
        if (response.status !== 201) throw new Error(`POST /posts: ${response.status} ${JSON.stringify(response.body)}`);
      }
    }),
  );
}

async function waitIndexed(system: Slice, token: string, expected: number): Promise<number> {
  const deadline = performance.now() + 900_000;
  for (;;) {
    const response = await call(`${system.urls.search}/search/index/status`, { token });
    const counts = (response.body as { counts: Record<string, number> }).counts;
    if ((counts.done ?? 0) >= expected && (counts.pending ?? 0) + (counts.claimed ?? 0) === 0) return performance.now();
    if ((counts.failed ?? 0) > 0) throw new Error(`rows failed: ${JSON.stringify(counts)}\n${system.logs()}`);
    if (performance.now() > deadline) throw new Error(`not indexed in time: ${JSON.stringify(counts)}`);
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}

async function indexing(files: ModelFiles, workers: number) {
  return withModelSystem(files, SYSTEM.filter((name) => name !== 'search-service'), async (system) => {
    for (let extra = 2; extra <= workers; extra++) await system.startWorker(`worker-${extra}`, { WORKER_QUEUES: 'embeddings', WORKER_CONCURRENCY: '8' });
    const token = await operator(system);
    await writePosts(system, token, INDEX_POSTS, 42);
    const started = performance.now();
    await system.restart('search-service');
    const seconds = ((await waitIndexed(system, token, INDEX_POSTS)) - started) / 1000;
    const pid = system.processes.get('mock-providers')!.child.pid!;
    return { workers, posts: INDEX_POSTS, seconds: Number(seconds.toFixed(1)), postsPerSecond: Math.round(INDEX_POSTS / seconds), providerAfter: await memoryOf(pid) };
  });
}

async function queryLatency(files: ModelFiles) {
  return withModelSystem(files, [...SYSTEM], async (system) => {
    const token = await operator(system);
    await writePosts(system, token, SEARCH_POSTS, 1_234);
    await waitIndexed(system, token, SEARCH_POSTS);
    const set = loadRelevanceSet();
    const texts = [...set.queries.map((query) => query.query), ...generatedQueries(200)];
    const latencies: number[] = [];
    let sent = 0;
    const deadline = performance.now() + SECONDS * 1000;
    const started = performance.now();
    await Promise.all(
      Array.from({ length: QUERY_CLIENTS }, async () => {
        while (performance.now() < deadline) {
          const q = texts[sent++ % texts.length]!;
          const begun = performance.now();
          const response = await fetch(`${system.urls.search}/search?q=${encodeURIComponent(q)}&limit=10`);
          await response.arrayBuffer();
          if (response.status !== 200) throw new Error(`search: ${response.status}`);
          latencies.push(performance.now() - begun);
        }
      }),
    );
    const stats = summary(latencies);
    return { posts: SEARCH_POSTS, clients: QUERY_CLIENTS, queries: stats.n, qps: Math.round(stats.n / ((performance.now() - started) / 1000)), p50ms: Number(stats.p50.toFixed(1)), p99ms: Number(stats.p99.toFixed(1)) };
  });
}

export async function run() {
  const dataDir = path.resolve(repositoryRoot, process.env.DATA_DIR ?? '.data');
  const files = await locateModelFiles({ dataDir, download: true, hubUrl: process.env.EMBEDDINGS_MODEL_HUB_URL ?? DEFAULT_HUB_URL, onProgress: (line) => console.log(`  ${line}`) });
  console.log(`model: ${files.dir} (${files.source})`);
  const provider = await providerPart(files);
  let search: { indexing: Awaited<ReturnType<typeof indexing>>[]; query: Awaited<ReturnType<typeof queryLatency>> } | undefined;
  const missing = INDEX_POSTS > 0 ? await serverMissing() : 'BENCH_MODEL_INDEX_POSTS=0';
  if (missing) {
    console.log(`\n(search end to end is skipped: ${missing})`);
  } else {
    console.log(`\n--- search end to end on a Postgres server with pgvector, vector(${MODEL_DIMENSIONS}): indexing ${INDEX_POSTS} posts waiting in posts-events`);
    const rows = [await indexing(files, 1), await indexing(files, 2)];
    printTable(rows.map(({ providerAfter, ...row }) => ({ ...row, providerRssMiB: providerAfter.rssMiB, providerPssMiB: providerAfter.pssMiB })));
    console.log(`\n--- search queries over ${SEARCH_POSTS} posts at ${QUERY_CLIENTS} clients, each embedded by the model (${SECONDS} s)`);
    const query = await queryLatency(files);
    printTable([query]);
    search = { indexing: rows, query };
  }
  return { model: MODEL_ID, dimensions: MODEL_DIMENSIONS, provider, search };
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  try {
    await run();
  } finally {
    await stopAll();
  }
  process.exit(0);
}
