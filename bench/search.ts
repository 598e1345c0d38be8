/**
 * Search benchmarks (flow 5.3) on real processes: auth, posts, search-service, the worker(s) and
 * the mock providers (embeddings: deterministic hashed word/bigram vectors, 256 dimensions), public
 * HTTP APIs only.
 *
 * 1. Indexing throughput, event to searchable: INDEX_POSTS posts are written while search-service
 *    is stopped (so they wait in `posts-events`), then search-service starts and the clock runs
 *    until `GET /search/index/status` shows every one indexed. Posts/s with 1 and with 2 worker
 *    processes (each with WORKER_CONCURRENCY), a fresh system each.
 * The corpus is generated (seeded): 8 DIY topics of 15 words each plus a shared general vocabulary
 * of ~120 words, titles of 6 words and bodies of 55, tags from the topics.
 * 2. Query latency over SEARCH_POSTS indexed posts: QUERIES distinct queries sent by CONCURRENCY
 *    closed-loop clients for QUERY_SECONDS, once with the HNSW index and once exact (`exact=true`,
 *    the same query without the index), alternating, REPS rounds. p50/p99 and queries/s; recall@10
 *    of HNSW against exact over the same queries.
 * Both parts run on each of search-service's databases: embedded PGlite (its default, as `npm start`
 * runs it) and a Postgres server with pgvector (SEARCH_DATABASE_URL, as in Compose): a fresh
 * database on BENCH_SEARCH_SERVER_URL per system, dropped after. A summary table puts the two side
 * by side against the goals: HNSW p99 < 50 ms on PGlite and < 15 ms on the server at 16 clients,
 * recall@10 ≥ 0.95, indexing ≥ 500 posts/s on the server.
 *
 * `npx tsx bench/search.ts` prints tables; `run()` returns the figures.
 * Env: BENCH_INDEX_POSTS (2000; 0 skips the indexing part), BENCH_SEARCH_POSTS (10000), BENCH_SEARCH_CONCURRENCY (16),
 * BENCH_SEARCH_SECONDS (10), BENCH_SEARCH_REPS (2), BENCH_SEARCH_QUERIES (200), BENCH_SEARCH_DATABASES (`pglite,server`),
 * BENCH_SEARCH_SERVER_URL (POSTGRES_TEST_URL, else postgres://postgres@127.0.0.1:5432/postgres: a server with
 * pgvector, see scripts/install-pgvector.sh), REDIS_BROKER_URL.
 */
import { performance } from 'node:perf_hooks';
import { pathToFileURL } from 'node:url';
import { seededRandom } from 'mock-providers/seeded-random';
import pg from 'pg';
import { createTestDatabase, type SystemService } from '@civildiy/common/testing';
import { call, loginUser, printTable, registerUser, startSlice, stopAll, summary, type Slice } from './system.ts';

const INDEX_POSTS = Number(process.env.BENCH_INDEX_POSTS ?? 2_000);
const SEARCH_POSTS = Number(process.env.BENCH_SEARCH_POSTS ?? 10_000);
const CONCURRENCY = Number(process.env.BENCH_SEARCH_CONCURRENCY ?? 16);
const QUERY_SECONDS = Number(process.env.BENCH_SEARCH_SECONDS ?? 10);
const REPS = Number(process.env.BENCH_SEARCH_REPS ?? 2);
const QUERIES = Number(process.env.BENCH_SEARCH_QUERIES ?? 200);
const WRITERS = 8;
const SERVER_URL = process.env.BENCH_SEARCH_SERVER_URL ?? process.env.POSTGRES_TEST_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';

/** Where search-service keeps its vectors: embedded PGlite, or a Postgres server with pgvector. */
type SearchDatabase = 'pglite' | 'server';
const DATABASES = (process.env.BENCH_SEARCH_DATABASES ?? 'pglite,server').split(',').map((name) => {
  const database = name.trim();
  if (database !== 'pglite' && database !== 'server') throw new Error(`BENCH_SEARCH_DATABASES: unknown database ${database} (pglite, server)`);
  return database;
}) satisfies SearchDatabase[];
/** The goals of issue 13: HNSW query p99 at 16 clients, and indexing posts/s. */
const P99_GOAL_MS: Record<SearchDatabase, number> = { pglite: 50, server: 15 };
const INDEXING_GOAL = 500;

const SERVICES: SystemService[] = ['mock-providers', 'auth-service', 'posts-service', 'search-service', 'worker'];

/** Seeded (mulberry32, the mock providers' generator), so every run indexes the same corpus. */
export const random = seededRandom;

const TOPICS: Record<string, string[]> = {
  woodworking: ['oak', 'plywood', 'dovetail', 'joinery', 'chisel', 'plane', 'workbench', 'sanding', 'glue', 'clamp', 'walnut', 'shelf', 'stool', 'mortise', 'tenon'],
  plumbing: ['pipe', 'leak', 'faucet', 'valve', 'drain', 'copper', 'solder', 'washer', 'trap', 'shower', 'sink', 'fitting', 'pressure', 'boiler', 'radiator'],
  electrical: ['wiring', 'socket', 'switch', 'lamp', 'circuit', 'breaker', 'cable', 'dimmer', 'fuse', 'led', 'fixture', 'junction', 'voltage', 'ceiling', 'outlet'],
  garden: ['raised', 'bed', 'cedar', 'compost', 'soil', 'tomato', 'trellis', 'irrigation', 'mulch', 'planter', 'seedling', 'greenhouse', 'hedge', 'lawn', 'herb'],
  tiling: ['tile', 'grout', 'mortar', 'backsplash', 'spacer', 'ceramic', 'porcelain', 'bathroom', 'floor', 'trowel', 'sealant', 'mosaic', 'cutter', 'level', 'adhesive'],
  painting: ['primer', 'roller', 'brush', 'emulsion', 'masking', 'tape', 'wall', 'colour', 'varnish', 'stain', 'sandpaper', 'filler', 'coat', 'gloss', 'matte'],
  insulation: ['loft', 'attic', 'foam', 'draught', 'wool', 'vapour', 'barrier', 'window', 'door', 'seal', 'thermal', 'cavity', 'board', 'heat', 'energy'],
  furniture: ['upholstery', 'chair', 'table', 'drawer', 'cabinet', 'hinge', 'veneer', 'restore', 'leg', 'frame', 'cushion', 'fabric', 'handle', 'dresser', 'bench'],
};
const TOPIC_NAMES = Object.keys(TOPICS);
const FILLER = ['first', 'then', 'carefully', 'measure', 'twice', 'cut', 'once', 'weekend', 'project', 'build', 'finish', 'cheap', 'quick', 'guide', 'tips'];
/**
 * Words any write-up may use, whatever its topic: real posts share a large general vocabulary, so a
 * corpus of topic words only would be thousands of near-duplicates (ties at the top-10 boundary).
 */
const GENERAL = (
  'afternoon apartment budget cellar corner cottage daughter decade drill dust edge evening family friend garage gloves ' +
  'hammer height kitchen ladder length living measurement mistake morning neighbour nail patience pencil porch rental ' +
  'ruler saw screw screwdriver shed son spring storage studio summer supplier tape toolbox tutorial village width winter ' +
  'workshop yard angle bracket bolt bucket clean crack curve damp drawing estimate gap grid hook hole joint knot lid ' +
  'marker mould noise offcut outline panel pattern plank plastic pliers rail recycled rope rust scrap sheet shim slope ' +
  'spirit square staple steel stone strap string surface template timber tool trim waste wedge wire wood zinc'
).split(' ');

function pick<T>(next: () => number, items: readonly T[]): T {
  return items[Math.floor(next() * items.length)]!;
}

function words(next: () => number, topic: string, count: number): string[] {
  const vocabulary = TOPICS[topic]!;
  return Array.from({ length: count }, () => {
    const roll = next();
    return roll < 0.45 ? pick(next, vocabulary) : roll < 0.9 ? pick(next, GENERAL) : pick(next, FILLER);
  });
}

export function post(next: () => number): { title: string; body: string; tags: string[] } {
  const topic = pick(next, TOPIC_NAMES);
  const second = next() < 0.3 ? pick(next, TOPIC_NAMES) : topic;
  const title = words(next, topic, 6).join(' ');
  const body = [...words(next, topic, 40), ...words(next, second, 15)].join(' ');
  return { title: title.charAt(0).toUpperCase() + title.slice(1), body: `${body}.`, tags: [...new Set([topic, second])] };
}

export function queries(count: number): string[] {
  const next = random(7_777);
  return Array.from({ length: count }, () => {
    const vocabulary = TOPICS[pick(next, TOPIC_NAMES)]!;
    return Array.from({ length: 2 + Math.floor(next() * 3) }, () => (next() < 0.7 ? pick(next, vocabulary) : pick(next, GENERAL))).join(' ');
  });
}

/** A user who may read the index's state (an operator): writes the posts and watches them indexed. */
const register = async (system: Slice) => {
  const user = await registerUser(system.urls.auth, 'bench');
  await system.grantRole(user.email);
  return loginUser(system.urls.auth, user.email);
};

/** Writes `count` generated posts through posts-service with WRITERS parallel writers. */
async function writePosts(system: Slice, token: string, count: number, seed: number): Promise<void> {
  const next = random(seed);
  const bodies = Array.from({ length: count }, () => post(next));
  let index = 0;
  const started = performance.now();
  await Promise.all(
    Array.from({ length: WRITERS }, async () => {
      while (index < bodies.length) {
        const body = bodies[index++]!;
        const response = await call(`${system.urls.posts}/posts`, { token, body });
        if (response.status !== 201) throw new Error(`POST /posts: ${response.status} ${JSON.stringify(response.body)}`);
      }
    }),
  );
  console.log(`  wrote ${count} posts in ${((performance.now() - started) / 1000).toFixed(1)} s`);
}

interface IndexStatus {
  counts: Record<string, number>;
}

async function indexStatus(system: Slice, token: string): Promise<IndexStatus> {
  const response = await call(`${system.urls.search}/search/index/status`, { token });
  if (response.status !== 200) throw new Error(`index status: ${response.status}`);
  return response.body as IndexStatus;
}

/** Resolves with the time at which `indexed` posts are searchable (no row pending or claimed). */
async function waitIndexed(system: Slice, token: string, expected: number, timeoutMs = 600_000): Promise<number> {
  const deadline = performance.now() + timeoutMs;
  let last = '';
  for (;;) {
    const { counts } = await indexStatus(system, token);
    const done = counts.done ?? 0;
    const open = (counts.pending ?? 0) + (counts.claimed ?? 0);
    if (done >= expected && open === 0) return performance.now();
    if ((counts.failed ?? 0) > 0) throw new Error(`rows failed: ${JSON.stringify(counts)}`);
    const line = JSON.stringify(counts);
    if (line !== last) last = line;
    if (performance.now() > deadline) throw new Error(`not indexed in time: ${line}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

/** Why the server at BENCH_SEARCH_SERVER_URL cannot hold search-service's database, or undefined when it can. */
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

/**
 * Starts the benchmark's system with search-service's database on `database` (a fresh database on
 * the server, dropped when the system stops) and runs `measure` on it.
 */
async function withSystem<T>(database: SearchDatabase, services: SystemService[], measure: (system: Slice) => Promise<T>): Promise<T> {
  const server = database === 'server' ? await createTestDatabase(SERVER_URL) : undefined;
  try {
    const system = await startSlice({ services, env: { WORKER_CONCURRENCY: '8', ...(server ? { SEARCH_DATABASE_URL: server.url } : {}) } });
    try {
      return await measure(system);
    } finally {
      await system.stop();
    }
  } finally {
    await server?.drop();
  }
}

async function indexing(database: SearchDatabase, workers: number) {
  return withSystem(database, SERVICES.filter((name) => name !== 'search-service'), async (system) => {
    for (let extra = 2; extra <= workers; extra++) await system.startWorker(`worker-${extra}`, { WORKER_QUEUES: 'embeddings', WORKER_CONCURRENCY: '8' });
    const token = await register(system);
    await writePosts(system, token, INDEX_POSTS, 42);
    const started = performance.now();
    await system.restart('search-service');
    const ready = performance.now();
    const finished = await waitIndexed(system, token, INDEX_POSTS);
    const seconds = (finished - started) / 1000;
    return { database, workers, posts: INDEX_POSTS, seconds: Number(seconds.toFixed(2)), startSeconds: Number(((ready - started) / 1000).toFixed(2)), postsPerSecond: Math.round(INDEX_POSTS / seconds) };
  });
}

interface SearchHit {
  postId: string;
}

async function search(system: Slice, q: string, exact: boolean): Promise<{ ms: number; ids: string[] }> {
  const started = performance.now();
  const response = await fetch(`${system.urls.search}/search?q=${encodeURIComponent(q)}&limit=10${exact ? '&exact=true' : ''}`);
  const body = (await response.json()) as { items?: SearchHit[] };
  const ms = performance.now() - started;
  if (response.status !== 200) throw new Error(`search: ${response.status} ${JSON.stringify(body)}`);
  return { ms, ids: (body.items ?? []).map((item) => item.postId) };
}

async function queryLoad(system: Slice, database: SearchDatabase, texts: string[], exact: boolean, round: number) {
  const latencies: number[] = [];
  const deadline = performance.now() + QUERY_SECONDS * 1000;
  let sent = 0;
  const started = performance.now();
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async () => {
      while (performance.now() < deadline) {
        const q = texts[sent++ % texts.length]!;
        latencies.push((await search(system, q, exact)).ms);
      }
    }),
  );
  const seconds = (performance.now() - started) / 1000;
  const stats = summary(latencies);
  return { database, mode: exact ? 'exact' : 'hnsw', round, queries: stats.n, qps: Math.round(stats.n / seconds), p50: Number(stats.p50.toFixed(1)), p99: Number(stats.p99.toFixed(1)), max: Number(stats.max.toFixed(1)) };
}

async function queryLatency(database: SearchDatabase) {
  return withSystem(database, SERVICES, async (system) => {
    const token = await register(system);
    await writePosts(system, token, SEARCH_POSTS, 1_234);
    const started = performance.now();
    await waitIndexed(system, token, SEARCH_POSTS);
    console.log(`  indexed ${SEARCH_POSTS} posts ${((performance.now() - started) / 1000).toFixed(1)} s after the last write`);
    const texts = queries(QUERIES);

    // Recall@10 of HNSW against exact, query by query (one at a time, nothing else running).
    let overlap = 0;
    let compared = 0;
    for (const q of texts) {
      const [approximate, exact] = [await search(system, q, false), await search(system, q, true)];
      if (exact.ids.length === 0) continue;
      const truth = new Set(exact.ids);
      overlap += approximate.ids.filter((id) => truth.has(id)).length / exact.ids.length;
      compared++;
    }
    const recallAt10 = Number((overlap / compared).toFixed(4));

    // Warm both paths, then alternate.
    await queryLoad(system, database, texts, false, 0);
    await queryLoad(system, database, texts, true, 0);
    const rows = [];
    for (let round = 1; round <= REPS; round++) {
      const order = round % 2 === 1 ? [false, true] : [true, false];
      for (const exact of order) rows.push(await queryLoad(system, database, texts, exact, round));
    }
    printTable(rows);
    console.log(`  recall@10 of HNSW against exact over ${compared} queries: ${recallAt10}`);
    return { database, posts: SEARCH_POSTS, concurrency: CONCURRENCY, seconds: QUERY_SECONDS, distinctQueries: QUERIES, recallAt10, rounds: rows };
  });
}

type IndexingRow = Awaited<ReturnType<typeof indexing>>;
type LatencyResult = Awaited<ReturnType<typeof queryLatency>>;

/** One row per database: the worst HNSW p99 of the rounds, recall@10 and the best indexing rate, each against its goal. */
function summaryRows(databases: SearchDatabase[], throughput: IndexingRow[], latency: LatencyResult[]) {
  return databases.map((database) => {
    const query = latency.find((result) => result.database === database);
    const hnsw = query?.rounds.filter((row) => row.mode === 'hnsw') ?? [];
    const p99 = hnsw.length > 0 ? Math.max(...hnsw.map((row) => row.p99)) : undefined;
    const rates = throughput.filter((row) => row.database === database).map((row) => row.postsPerSecond);
    const rate = rates.length > 0 ? Math.max(...rates) : undefined;
    const verdict = (ok: boolean | undefined) => (ok === undefined ? '' : ok ? 'yes' : 'NO');
    return {
      database,
      hnswP99: p99,
      p99Goal: `< ${P99_GOAL_MS[database]} ms`,
      p99Met: verdict(p99 === undefined ? undefined : p99 < P99_GOAL_MS[database]),
      recallAt10: query?.recallAt10.toFixed(3),
      recallMet: verdict(query === undefined ? undefined : query.recallAt10 >= 0.95),
      postsPerSecond: rate,
      indexingMet: verdict(rate === undefined ? undefined : rate >= INDEXING_GOAL),
    };
  });
}

export async function run(): Promise<Record<string, unknown>> {
  const databases: SearchDatabase[] = [];
  for (const database of DATABASES) {
    const missing = database === 'server' ? await serverMissing() : undefined;
    if (missing) console.log(`\n(the server path is skipped: the Postgres server at ${new URL(SERVER_URL).host} cannot hold search-service's database: ${missing})`);
    else databases.push(database);
  }
  const throughput: IndexingRow[] = [];
  if (INDEX_POSTS > 0) {
    console.log(`\n--- indexing throughput: ${INDEX_POSTS} posts waiting in posts-events, then search-service starts (${databases.join(', ')})`);
    for (const database of databases) for (const workers of [1, 2]) throughput.push(await indexing(database, workers));
    printTable(throughput);
  }
  const latency: LatencyResult[] = [];
  for (const database of databases) {
    console.log(`\n--- query latency on ${database} over ${SEARCH_POSTS} posts, ${CONCURRENCY} concurrent clients, ${QUERY_SECONDS} s × ${REPS} rounds per mode`);
    latency.push(await queryLatency(database));
  }
  console.log(`\n--- search-service on embedded PGlite and on a Postgres server with pgvector (${CONCURRENCY} clients; p99: the worst HNSW round)`);
  const summaryTable = summaryRows(databases, throughput, latency);
  printTable(summaryTable);
  return { indexing: throughput, query: latency, summary: summaryTable };
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  try {
    await run();
  } finally {
    await stopAll();
  }
  process.exit(0);
}
