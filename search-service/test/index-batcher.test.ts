import { count, max } from 'drizzle-orm';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { EmbedBatch, EmbeddedBatch } from '@civildiy/common/contracts';
import { defineTask, TaskClient } from '@civildiy/common/tasks';
import { REDIS_URL, removeRedisPrefix, startMockProviders, type MockProviders } from '@civildiy/common/testing';
import * as schema from '../src/db/schema.ts';
import {
  embeddingStats,
  eventually,
  logger,
  newPost,
  openSearchDatabase,
  searchServer,
  serverSkipNote,
  setEmbeddingFaults,
  startSearchService,
  type SearchDatabaseTarget,
  type SearchServiceUnderTest,
} from './search-service-under-test.ts';

/** `search.embed` with a short retry policy, so a failing provider fails a batch within a second. */
const quickEmbed = defineTask({
  name: 'search.embed-quick-retry',
  queue: 'embeddings',
  input: EmbedBatch,
  output: EmbeddedBatch,
  retry: { attempts: 3, backoff: { type: 'fixed', delayMs: 100, jitter: 0 } },
  timeoutMs: 5_000,
});

let providers: MockProviders;
let service: SearchServiceUnderTest | undefined;

beforeAll(async () => {
  providers = await startMockProviders();
});

afterEach(async () => {
  await setEmbeddingFaults(providers.embeddingsUrl, {});
  await service?.close();
  service = undefined;
});

afterAll(async () => {
  await providers?.stop();
});

function projects(n: number) {
  return Array.from({ length: n }, (_, i) => newPost({ title: `Birdhouse number ${i}`, body: `Cut the cedar panels of birdhouse ${i}, nail them and hang it.` }));
}

/** Publishes the posts and waits until the consumer has queued them all. */
async function queued(target: SearchServiceUnderTest, posts: ReturnType<typeof projects>) {
  for (const post of posts) await target.created(post);
  await eventually(async () => (await target.get('/search/index/status')).body.counts.pending, posts.length, 'pending rows');
}

async function queueRows(target: SearchServiceUnderTest) {
  return target.db.select().from(schema.indexQueue);
}

async function vectorCount(target: SearchServiceUnderTest) {
  const [row] = await target.db.select({ n: count() }).from(schema.postVectors);
  return row!.n;
}

/** A sample of the service's metrics: `name` or `name{label="value"}`. */
async function metric(target: SearchServiceUnderTest, sample: string): Promise<number | undefined> {
  const text = await target.registry.getSingleMetricAsString(sample.replace(/\{.*$/, ''));
  const line = text.split('\n').find((entry) => entry.startsWith(`${sample} `));
  return line === undefined ? undefined : Number(line.split(' ')[1]);
}

// The server target needs pgvector on the server: without it the test skips, saying why (it fails under CI=true).
const server = await searchServer();

describe.each<SearchDatabaseTarget>(['PGlite', 'Postgres server with pgvector'])('buffer claims on %s', (target) => {
  const skip = target !== 'PGlite' && server.status === 'skip';

  it.skipIf(skip)(`indexes every row exactly once when two batchers claim side by side${skip ? ` ${serverSkipNote(server)}` : ''}`, async () => {
    service = await startSearchService('two-claimers', { target, embeddingsUrl: providers.embeddingsUrl, startBatcher: false, batcher: { batchSize: 5, concurrency: 2 } });
    const posts = projects(60);
    await queued(service, posts);
    const before = await embeddingStats(providers.embeddingsUrl);
    // On a server the second batcher gets its own connection pool, as a second process would.
    const secondDatabase = target === 'PGlite' ? undefined : await openSearchDatabase(target, service.database.url);
    try {
      const second = service.addBatcher({ batchSize: 5, concurrency: 2, ...(secondDatabase ? { db: secondDatabase.db } : {}) });
      service.batcher.start();
      second.start();
      await service.indexed(60);

      const rows = await queueRows(service);
      expect(rows.map((row) => row.attempts)).toEqual(rows.map(() => 1));
      expect(new Set(rows.map((row) => row.claimedBy))).toEqual(new Set([service.batcher.claimer, second.claimer]));
      expect(await vectorCount(service)).toBe(60);
      expect(await metric(service, 'search_index_rows_indexed_total')).toBe(60);
      const after = await embeddingStats(providers.embeddingsUrl);
      expect(after.embeddingsCreated - before.embeddingsCreated).toBe(60);
      for (const post of posts.slice(0, 3)) expect((await service.searchIds(post.title, '&limit=1'))[0]).toBe(post.postId);
    } finally {
      await secondDatabase?.close();
    }
  });
});

describe('a claimer that dies mid-batch', () => {
  it('leaves its rows claimed until the lease runs out, then another batcher takes them over and indexes them once', async () => {
    service = await startSearchService('takeover', { embeddingsUrl: providers.embeddingsUrl, startBatcher: false });
    await queued(service, projects(8));
    // Its tasks go where no worker listens: the embed never completes.
    const nowhere = new TaskClient({ connection: REDIS_URL, prefix: `${service.prefix}-nowhere`, logger });
    try {
      const doomed = service.addBatcher({ tasks: nowhere, leaseMs: 1_500, batchSize: 8 });
      doomed.start();
      await eventually(async () => (await service!.get('/search/index/status')).body.counts.claimed, 8, 'claimed rows');
      await doomed.close({ timeoutMs: 0 });
      const [{ leaseEnd }] = (await service.db.select({ leaseEnd: max(schema.indexQueue.leaseUntil) }).from(schema.indexQueue)) as [{ leaseEnd: Date }];
      expect((await queueRows(service)).every((row) => row.status === 'claimed' && row.claimedBy === doomed.claimer)).toBe(true);

      const heir = service.addBatcher({ pollMs: 100 });
      heir.start();
      await service.indexed(8);
      const rows = await queueRows(service);
      expect(rows.every((row) => row.claimedBy === heir.claimer && row.attempts === 2)).toBe(true);
      expect(rows.every((row) => row.finishedAt!.getTime() >= leaseEnd.getTime())).toBe(true);
      expect(await vectorCount(service)).toBe(8);
      expect(await metric(service, 'search_index_batches_total{outcome="abandoned"}')).toBe(1);
      expect(await metric(service, 'search_index_batches_total{outcome="indexed"}')).toBe(1);
    } finally {
      await nowhere.close();
      await removeRedisPrefix(`${service.prefix}-nowhere`);
    }
  });
});

describe('embedding provider failures', () => {
  it('indexes everything when the provider fails a few calls and then recovers', async () => {
    service = await startSearchService('flaky', { embeddingsUrl: providers.embeddingsUrl, task: quickEmbed, startBatcher: false, batcher: { batchSize: 4 } });
    const posts = projects(10);
    await queued(service, posts);
    const before = await embeddingStats(providers.embeddingsUrl);
    await setEmbeddingFaults(providers.embeddingsUrl, { failNext: 2 });
    service.batcher.start();
    await service.indexed(10);
    const after = await embeddingStats(providers.embeddingsUrl);
    expect(after.failuresInjected - before.failuresInjected).toBe(2);
    expect(after.embeddingsCreated - before.embeddingsCreated).toBe(10);
    expect(await vectorCount(service)).toBe(10);
    expect(await metric(service, 'search_index_failed_rows_total')).toBe(0);
  });

  it('marks the rows of a batch that fails for good as failed, shows them, and indexes them after a redrive once the provider is back', async () => {
    service = await startSearchService('down', { embeddingsUrl: providers.embeddingsUrl, task: quickEmbed, startBatcher: false, batcher: { batchSize: 2 } });
    const posts = projects(5);
    await queued(service, posts);
    await setEmbeddingFaults(providers.embeddingsUrl, { failureRate: 1 });
    service.batcher.start();
    await eventually(async () => (await service!.get('/search/index/status')).body.counts, { pending: 0, claimed: 0, done: 0, failed: 5 }, 'failed rows');

    const seen: { postId: string; lastError: string; attempts: number }[] = [];
    let cursor: string | null = '';
    do {
      const page: { status: number; body: { failed: { items: typeof seen; nextCursor: string | null } } } = await service.get(
        `/search/index/status?limit=2${cursor ? `&cursor=${cursor}` : ''}`,
      );
      expect(page.status).toBe(200);
      seen.push(...page.body.failed.items);
      cursor = page.body.failed.nextCursor;
    } while (cursor);
    expect(seen.map((row) => row.postId).sort()).toEqual(posts.map((post) => post.postId).sort());
    for (const row of seen) expect(row.lastError).toMatch(/^provider\.(unavailable|circuit_open): /);
    expect(await metric(service, 'search_index_failed_rows')).toBe(5);
    expect(await metric(service, 'search_index_failed_rows_total')).toBe(5);

    await setEmbeddingFaults(providers.embeddingsUrl, {});
    expect(await service.searchIds(posts[0]!.title)).toEqual([]);
    const headers = { authorization: `Bearer ${await service.tokens.token(undefined, { roles: ['operator'] })}` };
    const redrive = await service.app.inject({ method: 'POST', url: '/search/index/failed/redrive', headers });
    expect(redrive.statusCode).toBe(200);
    expect(redrive.json()).toEqual({ redriven: 5 });
    await service.indexed(5);
    const { body } = await service.get('/search/index/status');
    expect(body.failed.items).toEqual([]);
    expect(await metric(service, 'search_index_failed_rows')).toBe(0);
    expect((await service.searchIds(posts[0]!.title, '&limit=1'))[0]).toBe(posts[0]!.postId);
    expect(new Set((await queueRows(service)).map((row) => row.lastError))).toEqual(new Set([null]));
  });
});

describe('a batcher closing', () => {
  it('finishes the batch in flight before it stops', async () => {
    service = await startSearchService('close', { embeddingsUrl: providers.embeddingsUrl, startBatcher: false, batcher: { batchSize: 3 } });
    await queued(service, projects(3));
    await setEmbeddingFaults(providers.embeddingsUrl, { latencyMs: 300 });
    service.batcher.start();
    await eventually(async () => (await service!.get('/search/index/status')).body.counts.claimed, 3, 'claimed rows');
    await service.batcher.close({ timeoutMs: 10_000 });
    expect((await service.get('/search/index/status')).body.counts).toEqual({ pending: 0, claimed: 0, done: 3, failed: 0 });
    expect(service.batcher.inFlightCount).toBe(0);
  });
});

