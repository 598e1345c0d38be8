import { eq, fillPlaceholders, sql, type SQL } from 'drizzle-orm';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { newId } from '@civildiy/common';
import { EmbeddingsClient } from '@civildiy/common/providers';
import { startMockProviders, type MockProviders } from '@civildiy/common/testing';
import { coalescedStatement } from '../src/coalesced-nearest.ts';
import * as schema from '../src/db/schema.ts';
import { ensureHnswIndexes, hnswIndexName, indexedDimensions } from '../src/hnsw-index.ts';
import { claimBatch, storeBatch, textId } from '../src/index-queue.ts';
import { nearestStatement } from '../src/semantic-search.ts';
import { diyCorpus, RANKING_CASES } from './diy-corpus.ts';
import {
  eventually,
  newPost,
  openSearchDatabase,
  searchServer,
  serverSkipNote,
  SPACE,
  startSearchService,
  type SearchDatabase,
  type SearchDatabaseTarget,
  type SearchServiceUnderTest,
  type StartOptions,
} from './search-service-under-test.ts';

/** Another model in another dimension: the mock seeds its hashing with the model's name, so its vectors are another space. */
const SPACE_384 = { model: 'civildiy-hash-embed-384', dimensions: 384 };

let providers: MockProviders;
let database: SearchDatabase | undefined;
const running = new Set<SearchServiceUnderTest>();

beforeAll(async () => {
  providers = await startMockProviders();
});

afterEach(async () => {
  for (const service of running) await service.close();
  running.clear();
});

afterAll(async () => {
  await providers?.stop();
});

const corpus = diyCorpus();
const posts = Object.values(corpus);

/** search-service on the test's database (a restart, when one ran before), configured for `options.space`. */
async function start(name: string, options: Omit<StartOptions, 'embeddingsUrl' | 'database'> = {}): Promise<SearchServiceUnderTest> {
  const service = await startSearchService(name, { ...options, database: database!, embeddingsUrl: providers.embeddingsUrl, batcher: { batchSize: 4 } });
  running.add(service);
  return service;
}

async function stop(service: SearchServiceUnderTest): Promise<void> {
  running.delete(service);
  await service.close();
}

/**
 * The suite's database as migrated (opening a PGlite database takes seconds): no row, no vector, no
 * space yet, and the migration's HNSW index only.
 */
async function emptyDatabase(): Promise<SearchDatabase> {
  const { db } = database!;
  await db.execute(sql`truncate index_queue, post_vectors, post_tombstones, inbox, outbox`);
  await db.update(schema.searchState).set({
    activeGeneration: 1,
    activeModel: null,
    activeDimensions: null,
    buildingGeneration: null,
    buildingModel: null,
    buildingDimensions: null,
    buildingStartedAt: null,
    switchedAt: null,
  });
  for (const dimensions of await indexedDimensions(db)) if (dimensions !== 256) await db.execute(sql.raw(`drop index "${hnswIndexName(dimensions)}"`));
  return database!;
}

/** The corpus indexed in generation 1, 256 dimensions, by a search-service that is then stopped; its answers to the ranking queries. */
async function indexedIn256() {
  await emptyDatabase();
  const first = await start('space-256');
  for (const post of posts) await first.created(post);
  await first.indexed(posts.length);
  const before = await answers(first);
  await stop(first);
  return before;
}

/**
 * The answers to the ranking queries: the scores, and the posts at each score. Posts sharing no
 * word with a query tie at score 0 in any order, and the limit cuts a tie anywhere, so the posts of
 * the last score are left out.
 */
async function answers(service: SearchServiceUnderTest) {
  const all = [];
  for (const [query] of RANKING_CASES) {
    const { status, body } = await service.get(`/search?q=${encodeURIComponent(query)}&limit=5`);
    expect(status, JSON.stringify(body)).toBe(200);
    const items = body.items as { postId: string; score: number }[];
    const posts = new Map<number, string[]>();
    for (const item of items) if (item.score !== items.at(-1)!.score) posts.set(item.score, [...(posts.get(item.score) ?? []), item.postId].sort());
    all.push({ scores: items.map((item) => item.score), posts: [...posts] });
  }
  return all;
}

/** Vectors by generation and dimension. */
async function vectors(service: SearchServiceUnderTest) {
  const rows = await service.db.execute<{ generation: number; dimensions: number; n: number }>(
    sql`select generation, vector_dims(embedding) as dimensions, count(*)::int as n from post_vectors group by 1, 2 order by 1, 2`,
  );
  return rows.rows.map((row) => ({ generation: Number(row.generation), dimensions: Number(row.dimensions), n: Number(row.n) }));
}

const activeGeneration = async (service: SearchServiceUnderTest) => (await service.get('/search/index/status')).body.activeGeneration as number;

// The server target needs pgvector on the server: without it the suite skips, saying why (it fails under CI=true).
const server = await searchServer();

describe.each<SearchDatabaseTarget>(['PGlite', 'Postgres server with pgvector'])('a change of embedding model and dimension on %s', (target) => {
  if (target !== 'PGlite' && server.status === 'skip') {
    it.skip(serverSkipNote(server), () => undefined);
    return;
  }

  beforeAll(async () => {
    database = await openSearchDatabase(target);
  });

  afterAll(async () => {
    await database?.close();
  });

  it('keeps serving the 256-dimension generation, with queries of its own model, while the 384-dimension one fills, then switches to it', async () => {
    const before = await indexedIn256();

    const service = await start('space-384', { space: SPACE_384, startBatcher: false });
    expect(service.prepared).toEqual({ action: 'reindexing', active: { generation: 1, space: SPACE }, started: { generation: 2, resumed: false, copied: 15 } });
    expect((await service.get('/search/index/status')).body).toMatchObject({
      activeGeneration: 1,
      model: SPACE.model,
      dimensions: 256,
      reindex: { generation: 2, model: SPACE_384.model, dimensions: 384, counts: { pending: 15, claimed: 0, done: 0, failed: 0 } },
    });
    // The same posts and scores: the 256-dimension vectors, and queries embedded by their model.
    expect(await answers(service)).toEqual(before);
    const chisels = newPost({ title: 'Sharpening chisels on a whetstone', tags: ['tools'], body: 'Flatten the back, hone the bevel and strop the chisel.' });
    await service.processed(await service.created(chisels));

    service.batcher.start();
    await eventually(() => activeGeneration(service), 2, 'the active generation');
    expect((await service.get('/search/index/status')).body).toMatchObject({
      activeGeneration: 2,
      model: SPACE_384.model,
      dimensions: 384,
      reindex: null,
      counts: { pending: 0, claimed: 0, done: 16, failed: 0 },
    });
    expect(await vectors(service)).toEqual([{ generation: 2, dimensions: 384, n: 16 }]);
    for (const [query, expected] of RANKING_CASES) expect((await service.searchIds(query, '&limit=1'))[0]).toBe(corpus[expected]!.postId);
    expect((await service.searchIds('sharpening a chisel on a whetstone', '&limit=1'))[0]).toBe(chisels.postId);
    const similar = (await service.get(`/search/similar/${corpus.raisedBed!.postId}?limit=3`)).body.items as { tags: string[] }[];
    expect(similar[0]!.tags).toContain('garden');
  });

  it('resumes the switch after a restart midway, without embedding again what was done, and switches back', async () => {
    const before = await indexedIn256();

    const interrupted = await start('space-384', { space: SPACE_384, startBatcher: false });
    // A batch of generation 2 embedded before the restart. Generation 1's rows are not the 384-dimension worker's to claim.
    const batch = (await claimBatch(interrupted.db, { claimer: 'before-the-restart', limit: 4, leaseMs: 60_000, space: SPACE_384 }))!;
    expect(batch.rows.map((row) => row.generation)).toEqual([2, 2, 2, 2]);
    const embedded = await new EmbeddingsClient({ baseUrl: providers.embeddingsUrl, ...SPACE_384, timeoutMs: 5_000 }).embed(batch.rows.map((row) => row.text));
    const vectors4 = batch.rows.map((row, i) => ({ id: textId(row), embedding: embedded.vectors[i]! }));
    expect(await storeBatch(interrupted.db, batch, { batchId: batch.batchId, model: embedded.model, dimensions: embedded.dimensions, vectors: vectors4 })).toEqual({ stored: 4, skipped: 0 });
    const early = await interrupted.db
      .select({ postId: schema.postVectors.postId, indexedAt: schema.postVectors.indexedAt })
      .from(schema.postVectors)
      .where(eq(schema.postVectors.generation, 2));
    await stop(interrupted);

    const resumed = await start('space-384-again', { space: SPACE_384 });
    expect(resumed.prepared).toMatchObject({ action: 'reindexing', started: { generation: 2, resumed: true, copied: 0 } });
    await eventually(() => activeGeneration(resumed), 2, 'the active generation');
    const kept = await resumed.db
      .select({ postId: schema.postVectors.postId, indexedAt: schema.postVectors.indexedAt })
      .from(schema.postVectors)
      .where(eq(schema.postVectors.generation, 2));
    expect(kept).toHaveLength(15);
    expect(kept).toEqual(expect.arrayContaining(early));
    const in384 = await answers(resumed);
    await stop(resumed);

    // Back to the 256-dimension model: the 384 generation serves until generation 3 is complete.
    const back = await start('back-to-256', { startBatcher: false });
    expect(back.prepared).toEqual({ action: 'reindexing', active: { generation: 2, space: SPACE_384 }, started: { generation: 3, resumed: false, copied: 15 } });
    expect(await answers(back)).toEqual(in384);
    back.batcher.start();
    await eventually(() => activeGeneration(back), 3, 'the active generation');
    expect(await vectors(back)).toEqual([{ generation: 3, dimensions: 256, n: 15 }]);
    // The same model and dimension as at first: the same vectors, so the same answers.
    expect(await answers(back)).toEqual(before);
  });

  it('drops an unfinished switch when the configuration goes back, and serves on', async () => {
    await indexedIn256();
    const switching = await start('space-384', { space: SPACE_384, startBatcher: false });
    expect(switching.prepared.action).toBe('reindexing');
    await stop(switching);

    const back = await start('back-to-256');
    expect(back.prepared).toEqual({ action: 'serving', active: { generation: 1, space: SPACE }, aborted: { generation: 2, space: SPACE_384 } });
    expect((await back.get('/search/index/status')).body).toMatchObject({ activeGeneration: 1, model: SPACE.model, dimensions: 256, reindex: null });
    expect(await vectors(back)).toEqual([{ generation: 1, dimensions: 256, n: 15 }]);
    expect((await back.searchIds(RANKING_CASES[0]![0], '&limit=1'))[0]).toBe(corpus[RANKING_CASES[0]![1]]!.postId);
  });

  it('gives a database without vectors the configured model at once, without a reindex', async () => {
    await emptyDatabase();
    const service = await start('fresh-384', { space: SPACE_384 });
    expect(service.prepared).toEqual({ action: 'adopted', active: { generation: 1, space: null } });
    for (const post of posts) await service.created(post);
    await service.indexed(posts.length);
    expect((await service.get('/search/index/status')).body).toMatchObject({ activeGeneration: 1, model: SPACE_384.model, dimensions: 384, reindex: null });
    expect(await vectors(service)).toEqual([{ generation: 1, dimensions: 384, n: 15 }]);
    expect(await indexedDimensions(service.db)).toEqual([256, 384]);
  });

  it('fails the batches a worker embeds in another dimension than their generation, saying why', async () => {
    await emptyDatabase();
    const service = await start('worker-elsewhere', { workerSpace: SPACE_384 });
    const post = newPost({ title: 'Oiling a teak garden bench', body: 'Clean, sand lightly and brush on two coats of teak oil.' });
    await service.processed(await service.created(post));
    await eventually(async () => (await service.get('/search/index/status')).body.counts.failed as number, 1, 'failed rows');
    const failed = (await service.get('/search/index/status')).body.failed.items[0];
    expect(failed).toMatchObject({ postId: post.postId, generation: 1 });
    expect(failed.lastError).toBe(
      "search.invalid_embeddings: model civildiy-hash-embed-384 returned 384 dimensions; generation 1 holds civildiy-hash-embed-1 (256 dimensions) (the worker's EMBEDDINGS_MODEL and EMBEDDINGS_DIMENSIONS must be search-service's)",
    );
  });

  it('reads each dimension through its own HNSW index, in every query shape', async () => {
    const empty = await emptyDatabase();
    const { db } = empty;
    // Migration 0004 made the index of 256 dimensions.
    expect(await ensureHnswIndexes(db, [384, 256])).toEqual([384]);
    // Processes starting together: one makes the index, the other finds it.
    expect((await Promise.all([ensureHnswIndexes(db, [512]), ensureHnswIndexes(db, [512])])).flat()).toEqual([512]);
    expect(await indexedDimensions(db)).toEqual([256, 384, 512]);
    await expect(ensureHnswIndexes(db, [2_001])).rejects.toThrow('An HNSW index takes 1 to 2000 dimensions, not 2001');

    // 40 vectors of each dimension, in generations 1 (256) and 2 (384), as during a switch.
    for (const [generation, dimensions] of [
      [1, 256],
      [2, 384],
    ] as const) {
      await db.execute(sql`
        insert into post_vectors (id, generation, post_id, version, title, excerpt, author_id, tags, created_at, embedding, model)
        select gen_random_uuid(), ${generation}, gen_random_uuid(), 1, 'title', 'excerpt', gen_random_uuid(), array['woodworking'], now(),
          (select array_agg(random() + 0 * i + 0 * d) from generate_series(1, ${dimensions}) d)::vector, 'model'
        from generate_series(1, 40) i`);
    }
    await db.execute(sql`analyze post_vectors`);

    for (const [generation, dimensions] of [
      [1, 256],
      [2, 384],
    ] as const) {
      const vector = `[${Array.from({ length: dimensions }, (_, i) => ((i % 7) / 7).toFixed(3)).join(',')}]`;
      const index = `Index Scan using ${hnswIndexName(dimensions)} on post_vectors`;
      for (const shape of [
        { tag: false, exclude: false },
        { tag: true, exclude: false },
        { tag: false, exclude: true },
      ]) {
        const query = nearestStatement(db, { ...shape, dimensions }).toSQL();
        const params = fillPlaceholders(query.params, { vector, generation, limit: 10, tag: 'woodworking', exclude: newId() });
        // A server's prepared statement is planned for its values at first, then maybe once for any values.
        for (const mode of ['force_custom_plan', 'force_generic_plan']) {
          expect(await explainPrepared(empty, query.sql, params, mode), `${JSON.stringify(shape)}, ${mode}`).toContain(index);
        }
      }
      const coalesced = coalescedStatement([1, 2, 3].map(() => ({ vector, limit: 10, generation, dimensions })));
      expect(await explain(empty, coalesced)).toContain(index);
    }
  });
});

async function explain(target: SearchDatabase, statement: SQL): Promise<string> {
  const plan = await target.db.execute<{ 'QUERY PLAN': string }>(sql`explain ${statement}`);
  return plan.rows.map((row) => row['QUERY PLAN']).join('\n');
}

let prepared = 0;
/** The plan of `text` prepared and executed with `params` under `plan_cache_mode` = `mode`. */
async function explainPrepared(target: SearchDatabase, text: string, params: unknown[], mode: string): Promise<string> {
  const name = `explained_${++prepared}`;
  const literal = (value: unknown) => (typeof value === 'number' ? String(value) : `'${String(value).replaceAll("'", "''")}'`);
  return target.db.transaction(async (tx) => {
    await tx.execute(sql.raw(`set local plan_cache_mode = ${mode}`));
    await tx.execute(sql.raw(`prepare ${name} as ${text}`));
    try {
      const plan = await tx.execute<{ 'QUERY PLAN': string }>(sql.raw(`explain execute ${name}(${params.map(literal).join(', ')})`));
      return plan.rows.map((row) => row['QUERY PLAN']).join('\n');
    } finally {
      await tx.execute(sql.raw(`deallocate ${name}`));
    }
  });
}
