import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { newId } from '@civildiy/common';
import { startMockProviders, type MockProviders } from '@civildiy/common/testing';
import { diyCorpus, RANKING_CASES } from './diy-corpus.ts';
import { setEmbeddingFaults, startSearchService, type SearchServiceUnderTest } from './search-service-under-test.ts';

let providers: MockProviders;
let service: SearchServiceUnderTest;
const corpus = diyCorpus();
const posts = Object.values(corpus);
const nameOf = new Map(Object.entries(corpus).map(([name, post]) => [post.postId, name]));

beforeAll(async () => {
  providers = await startMockProviders();
  service = await startSearchService('api', { embeddingsUrl: providers.embeddingsUrl, batcher: { batchSize: 4 } });
  for (const post of posts) await service.created(post);
  await service.indexed(posts.length);
});

afterAll(async () => {
  await service?.close();
  await providers?.stop();
});

interface Hit {
  postId: string;
  title: string;
  excerpt: string;
  authorId: string;
  authorUsername: string | null;
  tags: string[];
  score: number;
  version: number;
  createdAt: string;
}

async function search(url: string): Promise<Hit[]> {
  const { status, body } = await service.get<{ items: Hit[] }>(url);
  expect(status).toBe(200);
  return body.items;
}

/** The `search_query_batch_size` histogram: statements sent and the searches they answered. */
async function batchCounts(): Promise<{ count: number; sum: number }> {
  const metric = await service.registry.getSingleMetric('search_query_batch_size')!.get();
  const value = (name: string) => metric.values.find((sample) => (sample as { metricName?: string }).metricName === name)?.value ?? 0;
  return { count: value('search_query_batch_size_count'), sum: value('search_query_batch_size_sum') };
}

describe('ranking on a fixed corpus of DIY posts', () => {
  it.each(RANKING_CASES)('ranks the expected post first for "%s"', async (query, expected) => {
    const items = await search(`/search?q=${encodeURIComponent(query)}`);
    expect(nameOf.get(items[0]!.postId)).toBe(expected);
    expect(items[0]!.score).toBeGreaterThan(items[1]!.score);
  });

  it('returns the display fields, scores in descending order and at most `limit` items', async () => {
    const items = await search('/search?q=kitchen&limit=3');
    expect(items).toHaveLength(3);
    const scores = items.map((item) => item.score);
    expect([...scores].sort((a, b) => b - a)).toEqual(scores);
    const tap = corpus.tap!;
    const hit = (await search('/search?q=dripping%20kitchen%20tap&limit=1'))[0]!;
    expect(hit).toMatchObject({
      postId: tap.postId,
      title: tap.title,
      excerpt: tap.body,
      authorId: tap.authorId,
      authorUsername: 'builder',
      tags: ['plumbing'],
      version: 1,
      createdAt: new Date(tap.createdAt).toISOString(),
    });
    expect(hit.score).toBeGreaterThan(0);
    expect(hit.score).toBeLessThanOrEqual(1);
  });

  it('keeps to posts with the tag when one is given', async () => {
    const items = await search('/search?q=replace%20the%20old%20one&tag=electrical&limit=50');
    expect(items.map((item) => nameOf.get(item.postId)).sort()).toEqual(['ceiling', 'dimmer', 'floodlight']);
  });

  it('answers the same with exact=true (no index) as through the HNSW index', async () => {
    // Posts sharing no word with the query tie (score 0) in any order, and the limit cuts a tie
    // anywhere: the same scores, and the same posts at each score but the last.
    const byScore = (items: Hit[]) => {
      const last = items.at(-1)?.score;
      const posts = new Map<number, string[]>();
      for (const item of items) if (item.score !== last) posts.set(item.score, [...(posts.get(item.score) ?? []), item.postId].sort());
      return { scores: items.map((item) => item.score), posts: [...posts] };
    };
    for (const [query] of RANKING_CASES) {
      const q = encodeURIComponent(query);
      expect(byScore(await search(`/search?q=${q}&limit=10`))).toEqual(byScore(await search(`/search?q=${q}&limit=10&exact=true`)));
    }
  });

  it('answers searches that arrive together with one statement, exactly as it answers them one at a time', async () => {
    const asked = RANKING_CASES.flatMap(([query], index) => [`/search?q=${encodeURIComponent(query)}&limit=${3 + (index % 4) * 4}`, `/search?q=${encodeURIComponent(query)}`]);
    const alone: Hit[][] = [];
    for (const url of asked) alone.push(await search(url));
    const batchesBefore = await batchCounts();
    const together = await Promise.all(asked.map((url) => search(url)));
    expect(together).toEqual(alone);
    const batchesAfter = await batchCounts();
    // Every search was counted in a statement, and at least one statement answered several.
    expect(batchesAfter.sum - batchesBefore.sum).toBe(asked.length);
    expect(batchesAfter.count - batchesBefore.count).toBeLessThan(asked.length);
  });

  it('finds posts similar to a post, without the post itself', async () => {
    const items = await search(`/search/similar/${corpus.raisedBed!.postId}?limit=14`);
    expect(items.map((item) => item.postId)).not.toContain(corpus.raisedBed!.postId);
    expect(items).toHaveLength(14);
    expect(items[0]!.tags).toContain('garden');
  });
});

describe('search API errors', () => {
  it.each([
    ['an empty query', '/search?q='],
    ['a blank query', '/search?q=%20%20%20'],
    ['no query', '/search'],
    ['a query over 500 characters', `/search?q=${'a'.repeat(501)}`],
    ['a zero limit', '/search?q=shelf&limit=0'],
    ['a limit over 50', '/search?q=shelf&limit=51'],
    ['a limit that is no number', '/search?q=shelf&limit=ten'],
    ['a malformed tag', '/search?q=shelf&tag=Not%20A%20Tag!'],
    ['a similar post id that is no uuid', '/search/similar/not-a-uuid'],
    ['a similar limit over 50', `/search/similar/${newId()}?limit=51`],
  ])('answers 400 validation_failed for %s', async (_case, url) => {
    const { status, body } = await service.get(url);
    expect(status).toBe(400);
    expect(body.error.code).toBe('validation_failed');
  });

  it('accepts a query of exactly 500 characters', async () => {
    expect((await service.get(`/search?q=${'a'.repeat(500)}`)).status).toBe(200);
  });

  it('answers 404 search.not_found for similar posts of a post that is not indexed', async () => {
    const { status, body } = await service.get(`/search/similar/${newId()}`);
    expect(status).toBe(404);
    expect(body.error.code).toBe('search.not_found');
  });

  it('answers 400 search.invalid_cursor for a failed-rows cursor it did not hand out', async () => {
    const { status, body } = await service.get('/search/index/status?cursor=nonsense');
    expect(status).toBe(400);
    expect(body.error.code).toBe('search.invalid_cursor');
  });

  it('answers 503 search.embeddings_unavailable while the provider is down, and searches again once it is back', async () => {
    await setEmbeddingFaults(providers.embeddingsUrl, { failureRate: 1 });
    try {
      const { status, body } = await service.get('/search?q=a%20query%20never%20asked%20before');
      expect(status).toBe(503);
      expect(body.error.code).toBe('search.embeddings_unavailable');
      // A query embedded before the outage is still answered from the cache.
      expect((await service.get('/search?q=kitchen&limit=3')).status).toBe(200);
    } finally {
      await setEmbeddingFaults(providers.embeddingsUrl, {});
    }
    expect((await service.get('/search?q=a%20query%20never%20asked%20before')).status).toBe(200);
  });

  const OPERATIONS = [
    { method: 'GET', url: '/search/index/status' },
    { method: 'POST', url: '/search/index/failed/redrive' },
    { method: 'POST', url: '/search/index/reindex' },
    { method: 'GET', url: '/search/index/reindex' },
    { method: 'DELETE', url: '/search/index/reindex' },
  ] as const;

  it.each(OPERATIONS)('answers $method $url with 401 auth.missing_token without a token and 403 auth.role_required for a user without the operator role, changing nothing', async ({ method, url }) => {
    const anonymous = await service.app.inject({ method, url });
    expect({ status: anonymous.statusCode, code: anonymous.json().error?.code }).toEqual({ status: 401, code: 'auth.missing_token' });
    const user = await service.app.inject({ method, url, headers: { authorization: `Bearer ${await service.tokens.token()}` } });
    expect({ status: user.statusCode, code: user.json().error?.code }).toEqual({ status: 403, code: 'auth.role_required' });
    const unknownRole = await service.app.inject({ method, url, headers: { authorization: `Bearer ${await service.tokens.token(undefined, { roles: ['admin', 'OPERATOR'] })}` } });
    expect({ status: unknownRole.statusCode, code: unknownRole.json().error?.code }).toEqual({ status: 403, code: 'auth.role_required' });
    expect((await service.get('/search/index/reindex')).body).toEqual({ activeGeneration: 1, model: 'civildiy-hash-embed-1', dimensions: 256, building: null });
  });

  it('answers an operator the index status and a redrive', async () => {
    expect((await service.get('/search/index/status')).status).toBe(200);
    const authorization = `Bearer ${await service.tokens.token(undefined, { roles: ['operator'] })}`;
    const redrive = await service.app.inject({ method: 'POST', url: '/search/index/failed/redrive', headers: { authorization } });
    expect(redrive.statusCode).toBe(200);
    expect(redrive.json()).toEqual({ redriven: 0 });
  });
});
