import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { newId } from '@civildiy/common';
import { Redis } from '@civildiy/common/redis';
import { REDIS_URL, removeRedisPrefix, uniquePrefix } from '@civildiy/common/testing';
import { excerptOf } from '../src/feed-item.ts';
import { FeedGenerations } from '../src/feed-generations.ts';
import { FeedProjection } from '../src/feed-projection.ts';
import { FeedReader } from '../src/feed-reader.ts';
import { deletion, edited, newPost, profile } from './post-history.ts';

let redis: Redis;
let prefix: string;
let projection: FeedProjection;
let reader: FeedReader;
let generations: FeedGenerations;

beforeAll(() => {
  redis = new Redis(REDIS_URL, { maxRetriesPerRequest: null });
});

afterAll(async () => {
  await redis?.quit();
});

beforeEach(() => {
  prefix = uniquePrefix('feed-projection');
  projection = new FeedProjection({ redis, prefix });
  reader = new FeedReader(redis, prefix);
  generations = new FeedGenerations(redis, prefix);
});

afterEach(async () => {
  await removeRedisPrefix(prefix);
});

const globalFeed = async () => (await reader.page({ limit: 100 })).items;
const userFeed = async (userId: string) => (await reader.page({ userId, limit: 100 })).items;
const record = (postId: string) => redis.hgetall(generations.keys.of(1).item(postId));

describe('feed projection', () => {
  it('lists a created post in the global and its author feed, with an excerpt and the username as display name', async () => {
    const body = `${'Measure twice, cut once. '.repeat(20)}The end.`;
    const post = newPost({ body, tags: ['woodworking', 'shelves'] });
    expect(await projection.applyPost(post)).toBe('applied');

    const [item] = await globalFeed();
    expect(item).toEqual({
      postId: post.postId,
      authorId: post.authorId,
      authorDisplayName: 'builder',
      title: post.title,
      excerpt: excerptOf(body),
      tags: ['woodworking', 'shelves'],
      time: post.createdAt,
      updatedAt: post.updatedAt,
      version: 1,
    });
    expect(item!.excerpt.length).toBeLessThanOrEqual(281);
    expect(item!.excerpt.endsWith('once.…')).toBe(true);
    expect(await userFeed(post.authorId)).toEqual([item]);
  });

  it('changes nothing when the same event is delivered again', async () => {
    const post = newPost();
    await projection.applyPost(post);
    const before = await generations.dump(1);
    expect(await projection.applyPost(post)).toBe('duplicate');
    expect(await projection.applyPost(post)).toBe('duplicate');
    expect(await generations.dump(1)).toEqual(before);
  });

  it('never lets an older version overwrite a newer one', async () => {
    const v1 = newPost();
    const v2 = edited(v1, { title: 'Second edit' });
    const v3 = edited(v2, { title: 'Third edit' });
    expect(await projection.applyPost(v1)).toBe('applied');
    expect(await projection.applyPost(v3)).toBe('applied');
    expect(await projection.applyPost(v2)).toBe('stale');
    expect(await globalFeed()).toMatchObject([{ postId: v1.postId, title: 'Third edit', version: 3 }]);
  });

  it('applies an update that arrives before its create and ignores the later create', async () => {
    const created = newPost({ title: 'First title' });
    const update = edited(created, { title: 'Edited title' });
    expect(await projection.applyPost(update)).toBe('applied');
    expect(await projection.applyPost(created)).toBe('stale');
    expect(await globalFeed()).toMatchObject([{ postId: created.postId, title: 'Edited title', version: 2 }]);
  });

  it('keeps a post deleted before its create arrives: the tombstone wins over the create and the update', async () => {
    const created = newPost();
    const update = edited(created);
    const deleted = deletion(update);
    expect(await projection.applyDelete(deleted)).toBe('applied');
    expect(await projection.applyPost(created)).toBe('deleted');
    expect(await projection.applyPost(update)).toBe('deleted');
    expect(await projection.applyDelete(deleted)).toBe('duplicate');
    expect(await globalFeed()).toEqual([]);
    expect(await userFeed(created.authorId)).toEqual([]);
    expect(await record(created.postId)).toEqual({ version: '3', state: 'deleted' });
  });

  it('lets a delete win over a snapshot of the same version, whichever arrives first', async () => {
    const post = newPost();
    const clash = { ...deletion(post), version: 1 };
    await projection.applyPost(post);
    expect(await projection.applyDelete(clash)).toBe('applied');
    expect(await projection.applyPost(post)).toBe('deleted');
    const other = newPost();
    expect(await projection.applyDelete({ ...deletion(other), version: 1 })).toBe('applied');
    expect(await projection.applyPost(other)).toBe('deleted');
    expect(await globalFeed()).toEqual([]);
  });

  it('removes a deleted post from both feeds and keeps a tombstone that expires after the configured time', async () => {
    projection = new FeedProjection({ redis, prefix, tombstoneTtlMs: 60_000 });
    const post = newPost();
    const other = newPost({ authorId: post.authorId, minute: 1 });
    await projection.applyPost(post);
    await projection.applyPost(other);
    expect(await projection.applyDelete(deletion(post))).toBe('applied');
    expect((await globalFeed()).map((item) => item.postId)).toEqual([other.postId]);
    expect((await userFeed(post.authorId)).map((item) => item.postId)).toEqual([other.postId]);
    const ttl = await redis.pttl(generations.keys.of(1).item(post.postId));
    expect(ttl).toBeGreaterThan(50_000);
    expect(ttl).toBeLessThanOrEqual(60_000);
    expect(await redis.pttl(generations.keys.of(1).item(other.postId))).toBe(-1);
  });

  it('keeps the newest 100 posts of an author and the newest 1,000 overall, dropping the records no feed lists', async () => {
    const prolific = newId();
    const own = Array.from({ length: 101 }, (_, i) => newPost({ authorId: prolific, minute: i }));
    for (const post of own) await projection.applyPost(post);
    const ownFeed = await redis.zrevrange(generations.keys.of(1).user(prolific), 0, -1);
    expect(ownFeed).toHaveLength(100);
    expect(ownFeed).not.toContain(own[0]!.postId);
    // Out of its author's feed but still in the global one: the item stays.
    expect(await record(own[0]!.postId)).toMatchObject({ state: 'live', version: '1' });

    const others = Array.from({ length: 1_000 }, (_, i) => newPost({ minute: 1_000 + i }));
    const pipeline = others.map((post) => projection.applyPost(post));
    expect(new Set(await Promise.all(pipeline))).toEqual(new Set(['applied']));

    const dump = await generations.dump(1);
    expect(dump.global).toHaveLength(1_000);
    expect(dump.global.map(([postId]) => postId)).toEqual(others.map((post) => post.postId).reverse());
    expect(dump.users[prolific]).toHaveLength(100);
    // The oldest post is listed nowhere now: only an expiring version mark is left.
    expect(await record(own[0]!.postId)).toEqual({ version: '1', state: 'evicted' });
    expect(await redis.pttl(generations.keys.of(1).item(own[0]!.postId))).toBeGreaterThan(0);
    // Every post still in its author's feed keeps its item.
    expect(await record(own[100]!.postId)).toMatchObject({ state: 'live' });
    const listed = new Set([...dump.global.map(([id]) => id), ...Object.values(dump.users).flatMap((feed) => feed.map(([id]) => id))]);
    const live = Object.entries(dump.items).filter(([, fields]) => fields.state === 'live');
    expect(new Set(live.map(([id]) => id))).toEqual(listed);
    // A redelivered create of the evicted post does not bring it back.
    expect(await projection.applyPost(own[0]!)).toBe('duplicate');
    expect(await redis.zscore(generations.keys.of(1).user(prolific), own[0]!.postId)).toBeNull();
  });

  it('shows the newest profile version as display name on every item of the author at once, and ignores an older one', async () => {
    const author = newId();
    const posts = [newPost({ authorId: author, minute: 1 }), newPost({ authorId: author, minute: 2 })];
    for (const post of posts) await projection.applyPost(post);
    expect((await globalFeed()).map((item) => item.authorDisplayName)).toEqual(['builder', 'builder']);

    expect(await projection.applyProfile(profile(author, 3, 'Ann the Builder'))).toBe('applied');
    expect(await projection.applyProfile(profile(author, 2, 'Ann (old)'))).toBe('stale');
    expect(await projection.applyProfile(profile(author, 3, 'Ann the Builder'))).toBe('duplicate');
    expect((await globalFeed()).map((item) => item.authorDisplayName)).toEqual(['Ann the Builder', 'Ann the Builder']);
    expect((await userFeed(author)).map((item) => item.authorDisplayName)).toEqual(['Ann the Builder', 'Ann the Builder']);

    expect(await projection.applyProfile(profile(author, 4, 'Ann'))).toBe('applied');
    expect((await globalFeed())[0]!.authorDisplayName).toBe('Ann');
  });

  it('serves display names with quotes, backslashes and emoji as valid JSON', async () => {
    const post = newPost({ authorUsername: 'o"brien\\' });
    await projection.applyPost(post);
    expect((await globalFeed())[0]!.authorDisplayName).toBe('o"brien\\');
    await projection.applyProfile(profile(post.authorId, 2, 'Zoë "Saw" \\ 🪚\n'));
    expect((await globalFeed())[0]!.authorDisplayName).toBe('Zoë "Saw" \\ 🪚\n');
  });

  it('serves a null display name when neither a profile nor a username is known', async () => {
    const { authorUsername: _, ...post } = newPost();
    await projection.applyPost(post);
    expect((await globalFeed())[0]!.authorDisplayName).toBeNull();
  });
});

describe('excerpt', () => {
  it('keeps a short body whole, with whitespace collapsed', () => {
    expect(excerptOf('  A shelf.\n\nDone   in a day. ')).toBe('A shelf. Done in a day.');
  });

  it('cuts a long body after the last whole word within 280 characters', () => {
    const body = `${'word '.repeat(56)}tail`;
    const excerpt = excerptOf(body);
    expect(excerpt).toBe(`${'word '.repeat(55)}word…`);
    expect(excerpt.length).toBeLessThanOrEqual(281);
  });

  it('cuts inside a very long word, never in the middle of an emoji', () => {
    expect(excerptOf('x'.repeat(400))).toBe(`${'x'.repeat(280)}…`);
    const excerpt = excerptOf(`${'x'.repeat(279)}🪚${'x'.repeat(100)}`);
    expect(excerpt).toBe(`${'x'.repeat(279)}…`);
  });
});
