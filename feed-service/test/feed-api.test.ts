import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Registry } from 'prom-client';
import { createLogger, newId } from '@civildiy/common';
import { postCreated, postDeleted, postUpdated, profileUpdated } from '@civildiy/common/contracts';
import { RedisStreamsEventBus, createEnvelope, type Subscription } from '@civildiy/common/events';
import { Redis } from '@civildiy/common/redis';
import type { App } from '@civildiy/common/service';
import { REDIS_URL, createTestTokens, removeRedisPrefix, uniquePrefix } from '@civildiy/common/testing';
import { buildApp } from '../src/app.ts';
import { encodeCursor } from '../src/feed-cursor.ts';
import { FeedGenerations } from '../src/feed-generations.ts';
import type { FeedItem } from '../src/feed-item.ts';
import { feedMetrics } from '../src/feed-metrics.ts';
import { FeedProjection } from '../src/feed-projection.ts';
import { FeedReader } from '../src/feed-reader.ts';
import { CONSUMER_GROUP, FEED_TOPICS, subscribeToFeedEvents } from '../src/handlers.ts';
import { RebuildRunner } from '../src/rebuild-runner.ts';
import { deletion, edited, newPost, profile } from './post-history.ts';

const logger = createLogger({ service: 'feed-service', level: 'silent' });
const WAIT = { timeout: 15_000, interval: 25 };
const tokens = await createTestTokens();

let prefix: string;
let redis: Redis;
let bus: RedisStreamsEventBus;
let subscription: Subscription | undefined;
let registry: Registry;
let app: App;
/** Starts the live consumer (tests that need lag first publish before starting it). */
let startConsumer: () => Promise<void>;

/** feed-service's parts as main.ts wires them, under a prefix of this test's own. */
beforeEach(async () => {
  prefix = uniquePrefix('feed-api');
  redis = new Redis(REDIS_URL, { maxRetriesPerRequest: 1 });
  bus = new RedisStreamsEventBus({ connection: REDIS_URL, prefix: `${prefix}:`, logger, claimIdleMs: 1_000, blockMs: 200 });
  registry = new Registry();
  const generations = new FeedGenerations(redis, prefix);
  const metrics = feedMetrics({ admin: bus, group: CONSUMER_GROUP, topics: FEED_TOPICS, generation: () => generations.current(), registry });
  startConsumer = () => {
    subscription = subscribeToFeedEvents({
      subscriber: bus,
      projection: new FeedProjection({ redis, prefix }),
      concurrency: 8,
      onOutcome: (type, outcome) => metrics.record(type, outcome),
    });
    return subscription.ready;
  };
  const rebuilds = new RebuildRunner({ subscriber: bus, admin: bus, redis, prefix, logger });
  app = await buildApp({ reader: new FeedReader(redis, prefix), rebuilds, auth: tokens.keys, logger, readiness: { redis: () => redis.ping() }, metricsRegistry: registry, logRequests: false });
  await app.ready();
});

afterEach(async () => {
  await subscription?.close();
  subscription = undefined;
  await app?.close();
  await bus?.close();
  await redis?.quit();
  await removeRedisPrefix(prefix);
});

async function get(url: string) {
  const response = await app.inject({ method: 'GET', url });
  return { status: response.statusCode, body: response.json() as { items: FeedItem[]; nextCursor: string | null; error?: { code: string } } };
}

const ids = (items: FeedItem[]) => items.map((item) => item.postId);

/** Waits until `GET url` lists exactly the posts `expected` (newest first). */
async function feedShows(url: string, expected: string[]) {
  await expect.poll(async () => ids((await get(url)).body.items), WAIT).toEqual(expected);
}

describe('feed through the event bus', () => {
  it('shows a published post in the global and its author feed, follows its edit, the author rename and its delete', async () => {
    await startConsumer();
    const post = newPost({ title: 'Workbench from pallets', body: 'Sanded, oiled and bolted together.' });
    await bus.publish(postCreated, post);
    await feedShows('/feed', [post.postId]);

    const { body } = await get(`/feed/users/${post.authorId}`);
    expect(body).toEqual({
      items: [
        {
          postId: post.postId,
          authorId: post.authorId,
          authorDisplayName: 'builder',
          title: 'Workbench from pallets',
          excerpt: 'Sanded, oiled and bolted together.',
          tags: ['garden'],
          time: post.createdAt,
          updatedAt: post.updatedAt,
          version: 1,
        },
      ],
      nextCursor: null,
    });

    const update = edited(post, { title: 'Workbench, now with a vice' });
    await bus.publish(postUpdated, update);
    await expect.poll(async () => (await get('/feed')).body.items[0]?.title, WAIT).toBe('Workbench, now with a vice');

    await bus.publish(profileUpdated, profile(post.authorId, 2, 'Pat the Carpenter'));
    await expect.poll(async () => (await get(`/feed/users/${post.authorId}`)).body.items[0]?.authorDisplayName, WAIT).toBe('Pat the Carpenter');

    await bus.publish(postDeleted, deletion(update));
    await feedShows('/feed', []);
    expect((await get(`/feed/users/${post.authorId}`)).body.items).toEqual([]);
  });

  it('is not fooled by redelivered and reordered events: a delete published before the create keeps the post away', async () => {
    await startConsumer();
    const kept = newPost({ minute: 1 });
    const gone = newPost({ minute: 2 });
    const keptUpdate = edited(kept, { title: 'Updated first' });
    const created = createEnvelope(postCreated, kept);
    // Out of order and twice over: the update before its create, the delete before its create.
    await bus.publish(postUpdated, keptUpdate);
    await bus.publishEnvelope(created);
    await bus.publishEnvelope(created);
    await bus.publish(postDeleted, deletion(gone));
    await bus.publish(postCreated, gone);
    const marker = newPost({ minute: 3 });
    await bus.publish(postCreated, marker);
    await feedShows('/feed', [marker.postId, kept.postId]);
    expect((await get('/feed')).body.items[1]).toMatchObject({ title: 'Updated first', version: 2 });
  });

  it("lists only the author's posts in a user feed, answers an unknown user with an empty feed and a malformed id with 400", async () => {
    await startConsumer();
    const author = newId();
    const mine = [newPost({ authorId: author, minute: 1 }), newPost({ authorId: author, minute: 2 })];
    const theirs = newPost({ minute: 3 });
    for (const post of [...mine, theirs]) await bus.publish(postCreated, post);
    await feedShows('/feed', [theirs.postId, mine[1]!.postId, mine[0]!.postId]);

    expect(ids((await get(`/feed/users/${author}`)).body.items)).toEqual([mine[1]!.postId, mine[0]!.postId]);
    expect((await get(`/feed/users/${newId()}`)).body).toEqual({ items: [], nextCursor: null });
    const malformed = await get('/feed/users/not-a-uuid');
    expect(malformed.status).toBe(400);
    expect(malformed.body.error?.code).toBe('validation_failed');
  });

  it('reports consumer lag and projection outcomes on /metrics', async () => {
    // The group exists but nobody consumes yet: what is published waits as lag.
    for (const topic of FEED_TOPICS) await bus.createGroup(topic, CONSUMER_GROUP, 'end');
    const post = newPost();
    const created = createEnvelope(postCreated, post);
    await bus.publishEnvelope(created);
    await bus.publishEnvelope(created);
    await bus.publish(postCreated, newPost());
    const scrape = async () => (await app.inject({ method: 'GET', url: '/metrics' })).body;
    expect(await scrape()).toContain('feed_consumer_lag_events{topic="posts-events"} 3');

    await startConsumer();
    await expect.poll(scrape, WAIT).toContain('feed_consumer_lag_events{topic="posts-events"} 0');
    await expect.poll(scrape, WAIT).toContain('feed_consumer_pending_events{topic="posts-events"} 0');
    const text = await scrape();
    expect(text).toContain('feed_consumer_lag_events{topic="profiles-events"} 0');
    expect(text).toContain('feed_projection_applied_total{event="post.created"} 2');
    expect(text).toContain('feed_projection_ignored_total{event="post.created",reason="duplicate"} 1');
    expect(text).toContain('feed_generation 1');
  });

  it('answers ready while Redis answers', async () => {
    const response = await app.inject({ method: 'GET', url: '/health/ready' });
    expect(response.statusCode).toBe(200);
    expect(response.json()).toMatchObject({ status: 'ready', checks: { redis: { status: 'up' } } });
  });
});

describe('feed pagination', () => {
  /** 9 posts of one author, three of them published in the same millisecond. */
  async function publishPosts() {
    await startConsumer();
    const author = newId();
    const posts = Array.from({ length: 6 }, (_, i) => newPost({ authorId: author, minute: i }));
    const sameTime = Array.from({ length: 3 }, () => newPost({ authorId: author, minute: 10 }));
    for (const post of [...posts, ...sameTime]) await bus.publish(postCreated, post);
    // Newest first; posts of the same time by descending id.
    const expected = [...sameTime.map((post) => post.postId).sort().reverse(), ...posts.map((post) => post.postId).reverse()];
    await feedShows(`/feed/users/${author}?limit=100`, expected);
    return { author, expected };
  }

  it('walks every post exactly once, across equal times, and ends with a null cursor', async () => {
    const { author, expected } = await publishPosts();
    for (const base of ['/feed', `/feed/users/${author}`]) {
      const seen: string[] = [];
      let cursor: string | null = null;
      let pages = 0;
      do {
        const query = `?limit=2${cursor === null ? '' : `&cursor=${cursor}`}`;
        const { status, body } = await get(`${base}${query}`);
        expect(status).toBe(200);
        expect(body.items.length).toBeLessThanOrEqual(2);
        seen.push(...ids(body.items));
        cursor = body.nextCursor;
        pages += 1;
      } while (cursor !== null);
      expect(seen).toEqual(expected);
      expect(pages).toBe(5);
    }
  });

  it('gives a null cursor when the page ends exactly at the last post, and an empty page after the oldest post', async () => {
    const { author, expected } = await publishPosts();
    const first = await get(`/feed/users/${author}?limit=5`);
    const second = await get(`/feed/users/${author}?limit=4&cursor=${first.body.nextCursor}`);
    expect(ids(second.body.items)).toEqual(expected.slice(5));
    expect(second.body.nextCursor).toBeNull();

    const oldest = (await get(`/feed/users/${author}?limit=100`)).body.items.at(-1)!;
    const past = encodeCursor({ score: Date.parse(oldest.time), postId: oldest.postId });
    expect((await get(`/feed/users/${author}?cursor=${past}`)).body).toEqual({ items: [], nextCursor: null });
  });

  it('continues after a cursor whose post was deleted meanwhile', async () => {
    const { author, expected } = await publishPosts();
    const first = await get(`/feed/users/${author}?limit=3`);
    const last = first.body.items.at(-1)!;
    await bus.publish(postDeleted, { postId: last.postId, authorId: author, version: 2, reason: 'author', deletedAt: new Date().toISOString() });
    await feedShows(`/feed/users/${author}?limit=100`, expected.filter((id) => id !== last.postId));
    expect(ids((await get(`/feed/users/${author}?limit=3&cursor=${first.body.nextCursor}`)).body.items)).toEqual(expected.slice(3, 6));
  });

  it('defaults to 20 items, accepts 1 to 100 and rejects other limits', async () => {
    await startConsumer();
    const posts = Array.from({ length: 21 }, (_, i) => newPost({ minute: i }));
    for (const post of posts) await bus.publish(postCreated, post);
    await expect.poll(async () => (await get('/feed?limit=100')).body.items.length, WAIT).toBe(21);

    const page = await get('/feed');
    expect(page.body.items).toHaveLength(20);
    expect(page.body.nextCursor).not.toBeNull();
    expect((await get('/feed?limit=1')).body.items).toHaveLength(1);
    expect((await get('/feed?cursor=&limit=21')).body).toMatchObject({ nextCursor: null });
    for (const limit of ['0', '101', '-1', '2.5', 'ten']) {
      const response = await get(`/feed?limit=${limit}`);
      expect(response.status, `limit=${limit}`).toBe(400);
      expect(response.body.error?.code).toBe('validation_failed');
    }
  });

  it('rejects a cursor it did not issue with 400 feed.invalid_cursor', async () => {
    const userId = newId();
    const forged = [
      'not a cursor',
      'abc!',
      Buffer.from('1700000000000').toString('base64url'),
      Buffer.from(`1700000000000:${'x'.repeat(36)}`).toString('base64url'),
      Buffer.from(`99999999999999999:${newId()}`).toString('base64url'),
      'A'.repeat(500),
    ];
    for (const cursor of forged) {
      for (const base of ['/feed', `/feed/users/${userId}`]) {
        const response = await get(`${base}?cursor=${encodeURIComponent(cursor)}`);
        expect(response.status, cursor).toBe(400);
        expect(response.body.error?.code).toBe('feed.invalid_cursor');
      }
    }
  });
});

describe('feed without Redis', () => {
  it('answers 503 feed.unavailable and reports itself not ready', async () => {
    const down = new Redis('redis://127.0.0.1:1', { lazyConnect: true, enableOfflineQueue: false, maxRetriesPerRequest: 0, retryStrategy: () => null });
    down.on('error', () => {});
    const rebuilds = new RebuildRunner({ subscriber: bus, admin: bus, redis: down, prefix, logger });
    const offline = await buildApp({ reader: new FeedReader(down, prefix), rebuilds, auth: tokens.keys, logger, readiness: { redis: () => down.ping() }, metricsRegistry: new Registry(), logRequests: false });
    try {
      const response = await offline.inject({ method: 'GET', url: '/feed' });
      expect(response.statusCode).toBe(503);
      expect(response.json().error.code).toBe('feed.unavailable');
      expect((await offline.inject({ method: 'GET', url: '/health/ready' })).statusCode).toBe(503);
    } finally {
      await offline.close();
      down.disconnect();
    }
  });
});
