import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { newId, PermanentError } from '@civildiy/common';
import type { PostDeleted } from '@civildiy/common/contracts';
import { RedisStreamsEventBus, type EnvelopePublisher, type EventEnvelope } from '@civildiy/common/events';
import { Redis } from '@civildiy/common/redis';
import { PrivateRedisServer, REDIS_URL, removeRedisPrefix, uniquePrefix } from '@civildiy/common/testing';
import type { Post, PostsStore } from '../src/posts-store.ts';
import { toSnapshot } from '../src/posts-store.ts';
import { logger, poll } from './posts-service-under-test.ts';
import { skipNote, storeTargets, type RelayUnderTest, type StoreUnderTest } from './store-targets.ts';

/** Far enough ahead that no test's "now" reaches it, unless a test passes it as `now`. */
const FAR_FUTURE = new Date('2999-01-01T00:00:00.000Z');

function newPost(overrides: Partial<Post> = {}): Post {
  const now = new Date();
  return {
    id: newId(),
    authorId: newId(),
    authorUsername: 'maker',
    title: 'Workbench',
    body: 'Beech top, pine legs',
    tags: ['bench'],
    expiresAt: null,
    version: 1,
    createdAt: now,
    updatedAt: now,
    ...overrides,
  };
}

function deletionOf(post: Post, reason: PostDeleted['reason'] = 'author'): PostDeleted {
  return { postId: post.id, authorId: post.authorId, version: post.version + 1, reason, deletedAt: new Date().toISOString() };
}

/** An in-test publisher: records what it is given; `before` runs ahead of each publish (to hold or fail it). */
class RecordingPublisher implements EnvelopePublisher {
  readonly received: EventEnvelope[] = [];
  constructor(private readonly before?: (envelope: EventEnvelope) => Promise<void>) {}
  async publishEnvelope(envelope: EventEnvelope): Promise<void> {
    await this.before?.(envelope);
    this.received.push(envelope);
  }
}

/** A logger whose lines (error and up) the test reads. */
function recordingLogger() {
  const lines: Record<string, unknown>[] = [];
  return { logger: pino({ level: 'error' }, { write: (line: string) => lines.push(JSON.parse(line) as Record<string, unknown>) }), lines };
}

/** The `posts-events` entries of a Redis stream, as envelopes, in stream order. */
async function streamEnvelopes(redis: Redis, streamKey: string): Promise<EventEnvelope[]> {
  const entries = (await redis.xrange(streamKey, '-', '+')) as [string, string[]][];
  return entries.map(([, fields]) => JSON.parse(fields[fields.indexOf('envelope') + 1]!) as EventEnvelope);
}

/**
 * The contract of the `PostsStore` port, on every store and database it runs on: reads and pages,
 * idempotent creates, conditional writes, and the outbox: every change yields exactly its event, in
 * order, through the store's relay to a real event bus (Redis Streams under a prefix of its own),
 * after a crash and a broker outage too; and expiry by concurrent runs.
 *
 * mongo-java-server stands in for MongoDB here; what it cannot show is said where it matters: it
 * has no replica set (so no transactions: the Mongo store needs none, its outbox lives in each post
 * document) and no TTL monitor (the tombstones' purge is checked by its index definition there, and
 * waited for only on a real MongoDB, `MONGODB_TEST_URL`).
 */
for (const target of await storeTargets()) {
  describe.skipIf(target.skipReason !== undefined)(`posts store contract: ${target.title}${skipNote(target)}`, () => {
    let under: StoreUnderTest;
    let store: PostsStore;
    let prefix: string;
    let bus: RedisStreamsEventBus;
    let redis: Redis;
    let relay: RelayUnderTest;

    beforeAll(async () => {
      under = await target.open();
      store = under.store;
      prefix = uniquePrefix('posts-store');
      bus = new RedisStreamsEventBus({ connection: REDIS_URL, prefix: `${prefix}:`, logger, blockMs: 100 });
      redis = new Redis(REDIS_URL);
      relay = under.relay(bus, logger, { pollIntervalMs: 200 });
      relay.start();
    });

    afterAll(async () => {
      await relay?.stop();
      await under?.close();
      await bus?.close();
      redis?.disconnect();
      if (prefix) await removeRedisPrefix(prefix);
    });

    /** The events of these posts on the bus, in stream order. */
    async function publishedFor(...postIds: string[]): Promise<EventEnvelope[]> {
      const wanted = new Set(postIds);
      return (await streamEnvelopes(redis, bus.streamKey('posts-events'))).filter((envelope) => wanted.has(envelope.key));
    }

    /** Resolves with the posts' events on the bus once nothing of theirs is left to publish and at least `n` are there. */
    async function awaitPublished(postIds: string[], n: number): Promise<EventEnvelope[]> {
      await expect.poll(() => under.pendingEvents(postIds), poll).toBe(0);
      await expect.poll(async () => (await publishedFor(...postIds)).length, poll).toBeGreaterThanOrEqual(n);
      return publishedFor(...postIds);
    }

    describe('reads', () => {
      it('finds a post, pages an author’s posts newest first, filters by tag across authors and by both', async () => {
        const alice = newId();
        const bob = newId();
        const tag = `jig-${newId().slice(-8)}`;
        const posts: Post[] = [];
        for (let i = 0; i < 4; i += 1) {
          const post = newPost({ authorId: alice, title: `Post ${i}`, tags: i % 2 === 0 ? [tag, 'wood'] : ['wood'] });
          expect(await store.create(post)).toEqual({ created: true, post });
          posts.push(post);
        }
        const bobs = newPost({ authorId: bob, tags: ['metal', tag] });
        await store.create(bobs);
        const now = new Date();
        const ids = (list: Post[]) => list.map((post) => post.id);

        expect(await store.find(posts[0]!.id, now)).toEqual(posts[0]);
        expect(await store.find(newId(), now)).toBeUndefined();

        const first = await store.list({ authorId: alice, limit: 2, now });
        expect(ids(first)).toEqual([posts[3]!.id, posts[2]!.id]);
        expect(first[0]).toEqual(posts[3]);
        expect(ids(await store.list({ authorId: alice, beforeId: posts[2]!.id, limit: 2, now }))).toEqual([posts[1]!.id, posts[0]!.id]);
        expect(await store.list({ authorId: alice, beforeId: posts[0]!.id, limit: 2, now })).toEqual([]);

        expect(ids(await store.list({ tag, limit: 10, now }))).toEqual([bobs.id, posts[2]!.id, posts[0]!.id]);
        expect(ids(await store.list({ tag, limit: 1, beforeId: bobs.id, now }))).toEqual([posts[2]!.id]);
        expect(ids(await store.list({ authorId: alice, tag, limit: 10, now }))).toEqual([posts[2]!.id, posts[0]!.id]);
        expect(ids(await store.list({ limit: 2, beforeId: bobs.id, now }))).toEqual([posts[3]!.id, posts[2]!.id]);
      });

      it('hides a post from find and list from its expiresAt on', async () => {
        const post = newPost({ expiresAt: FAR_FUTURE });
        await store.create(post);
        const justBefore = new Date(FAR_FUTURE.getTime() - 1);
        expect(await store.find(post.id, justBefore)).toEqual(post);
        expect(await store.list({ authorId: post.authorId, limit: 10, now: justBefore })).toEqual([post]);
        expect(await store.find(post.id, FAR_FUTURE)).toBeUndefined();
        expect(await store.list({ authorId: post.authorId, limit: 10, now: FAR_FUTURE })).toEqual([]);
      });
    });

    describe('idempotent creates', () => {
      it('returns the first post and its request hash for a repeated key, writing nothing; another author may use the key', async () => {
        const author = newId();
        const key = `key-${newId()}`;
        const first = newPost({ authorId: author });
        expect(await store.create(first, { key, requestHash: 'hash-1' })).toEqual({ created: true, post: first });

        const before = await under.writeCounts();
        const repeat = newPost({ authorId: author, title: 'Another body' });
        expect(await store.create(repeat, { key, requestHash: 'hash-2' })).toEqual({ created: false, post: first, requestHash: 'hash-1' });
        expect(await under.writeCounts()).toEqual(before);
        expect(await store.find(repeat.id, new Date())).toBeUndefined();

        const stranger = newPost();
        expect(await store.create(stranger, { key, requestHash: 'hash-1' })).toEqual({ created: true, post: stranger });
      });

      it('creates one post when the same key arrives concurrently', async () => {
        const author = newId();
        const key = `race-${newId()}`;
        const attempts = Array.from({ length: 6 }, () => newPost({ authorId: author }));
        const results = await Promise.all(attempts.map((post) => store.create(post, { key, requestHash: 'same' })));
        expect(results.filter((result) => result.created)).toHaveLength(1);
        expect(new Set(results.map((result) => result.post.id)).size).toBe(1);
        expect(await store.list({ authorId: author, limit: 10, now: new Date() })).toHaveLength(1);
      });

      it('lets the key be used again once its post is deleted', async () => {
        const author = newId();
        const key = `again-${newId()}`;
        const first = newPost({ authorId: author });
        await store.create(first, { key, requestHash: 'h' });
        expect(await store.delete(deletionOf(first), 1)).toBe(true);
        const second = newPost({ authorId: author });
        expect(await store.create(second, { key, requestHash: 'h' })).toEqual({ created: true, post: second });
      });
    });

    describe('conditional writes', () => {
      it('refuses an update or delete at a stale version and writes nothing', async () => {
        const post = newPost();
        await store.create(post);
        const edited = { ...post, title: 'Edited', version: 2, updatedAt: new Date() };
        expect(await store.update(edited, 1)).toBe(true);

        const before = await under.writeCounts();
        expect(await store.update({ ...post, title: 'Stale edit', version: 2 }, 1)).toBe(false);
        expect(await store.delete(deletionOf(post), 1)).toBe(false);
        expect(await under.writeCounts()).toEqual(before);
        expect(await store.find(post.id, new Date())).toEqual(edited);

        expect(await store.delete(deletionOf(edited), 2)).toBe(true);
        expect(await store.find(post.id, new Date())).toBeUndefined();
        const afterDelete = await under.writeCounts();
        expect(await store.update({ ...edited, version: 3 }, 2)).toBe(false);
        expect(await store.update({ ...edited, version: 4 }, 3)).toBe(false);
        expect(await store.delete(deletionOf({ ...edited, version: 3 }), 3)).toBe(false);
        expect(await under.writeCounts()).toEqual(afterDelete);
      });

      it('writes nothing when the change’s event breaks its contract', async () => {
        const before = await under.writeCounts();
        // Version 0 passes the store but not the post.created contract.
        const invalid = newPost({ version: 0 });
        await expect(store.create(invalid)).rejects.toThrow();
        expect(await store.find(invalid.id, new Date())).toBeUndefined();

        const post = newPost();
        await store.create(post);
        const counts = await under.writeCounts();
        expect(counts.posts).toBe(before.posts + 1);
        await expect(store.update({ ...post, title: 'Edited', version: 0 }, 1)).rejects.toThrow();
        await expect(store.delete({ ...deletionOf(post), reason: 'bored' as PostDeleted['reason'] }, 1)).rejects.toThrow();
        expect(await under.writeCounts()).toEqual(counts);
        expect(await store.find(post.id, new Date())).toEqual(post);
      });
    });

    describe('events', () => {
      it('publishes exactly one event per change, in order, with the snapshots the store wrote', async () => {
        const post = newPost({ tags: ['shelf'] });
        await store.create(post);
        const second = { ...post, title: 'Second', version: 2, updatedAt: new Date() };
        expect(await store.update(second, 1)).toBe(true);
        const third = { ...second, body: 'Third', version: 3, updatedAt: new Date() };
        expect(await store.update(third, 2)).toBe(true);
        const deletion = deletionOf(third);
        expect(await store.delete(deletion, 3)).toBe(true);

        const events = await awaitPublished([post.id], 4);
        expect(events.map((event) => [event.type, (event.data as { version: number }).version])).toEqual([
          ['post.created', 1],
          ['post.updated', 2],
          ['post.updated', 3],
          ['post.deleted', 4],
        ]);
        expect(new Set(events.map((event) => event.id)).size).toBe(4);
        expect(events.map((event) => event.data)).toEqual([toSnapshot(post), toSnapshot(second), toSnapshot(third), deletion]);
        expect(events.every((event) => event.topic === 'posts-events' && event.key === post.id)).toBe(true);
      });

      it('loses nothing when the relay stops between the write and the publish: the next relay publishes it', async () => {
        await relay.stop();
        const post = newPost();
        try {
          await store.create(post);
          expect(await store.update({ ...post, title: 'Edited while no relay ran', version: 2 }, 1)).toBe(true);
          expect(await under.pendingEvents([post.id])).toBe(2);
          expect(await publishedFor(post.id)).toEqual([]);
        } finally {
          // The process is gone; a new one starts its relay.
          relay = under.relay(bus, logger, { pollIntervalMs: 200 });
          relay.start();
        }
        const events = await awaitPublished([post.id], 2);
        expect(events.map((event) => [event.type, (event.data as { version: number }).version])).toEqual([
          ['post.created', 1],
          ['post.updated', 2],
        ]);
      });

      it('publishes an event again with the same id when the broker took it but the relay saw a failure (at least once)', async () => {
        const post = newPost();
        let failOnce = true;
        const publisher = new RecordingPublisher(async (envelope) => {
          if (envelope.key === post.id && failOnce) {
            failOnce = false;
            await bus.publishEnvelope(envelope); // it lands, and yet the answer is lost
            throw new Error('connection reset after the write (in-test publisher)');
          }
          await bus.publishEnvelope(envelope);
        });
        await relay.stop();
        const flaky = under.relay(publisher, logger, { pollIntervalMs: 100, backoff: { baseMs: 50, maxMs: 50 } });
        try {
          flaky.start();
          await store.create(post);
          const events = await awaitPublished([post.id], 2);
          expect(events.map((event) => event.id)).toEqual([events[0]!.id, events[0]!.id]);
          expect(events[0]).toMatchObject({ type: 'post.created', data: { postId: post.id, version: 1 } });
        } finally {
          await flaky.stop();
          relay = under.relay(bus, logger, { pollIntervalMs: 200 });
          relay.start();
        }
      });

      it('keeps writing while the broker is down and publishes everything in order once it is back', async () => {
        const broker = await PrivateRedisServer.start();
        const outageBus = new RedisStreamsEventBus({ connection: broker.url, prefix: `${prefix}:outage:`, logger, blockMs: 100 });
        const reader = new Redis(broker.url);
        reader.on('error', () => undefined); // it reconnects by itself once the server is back
        const outageRelay = under.relay(outageBus, logger, { pollIntervalMs: 100, deliveryTimeoutMs: 300, backoff: { baseMs: 100, maxMs: 400 } });
        const stopWatching = outageBus.onRecovered(() => void outageRelay.retryWaitingNow().catch(() => undefined));
        await relay.stop();
        try {
          outageRelay.start();
          const post = newPost();
          await broker.crash();
          await store.create(post);
          expect(await store.update({ ...post, title: 'Edited during the outage', version: 2 }, 1)).toBe(true);
          // The relay tries, fails and waits; the events stay with the post.
          await expect.poll(() => outageRelay.publishFailures(), poll).toBeGreaterThanOrEqual(2);
          expect(await under.pendingEvents([post.id])).toBe(2);
          await broker.up();
          await expect.poll(() => under.pendingEvents([post.id]), poll).toBe(0);
          const events = (await streamEnvelopes(reader, outageBus.streamKey('posts-events'))).filter((envelope) => envelope.key === post.id);
          // Publishes that timed out while Redis was away may land later too (at least once): the same
          // envelope again, which consumers' inboxes drop. Once each, first landings in order:
          const firstLandings = events.filter((event, index) => events.findIndex((other) => other.id === event.id) === index);
          expect(firstLandings.map((event) => [event.type, (event.data as { version: number }).version])).toEqual([
            ['post.created', 1],
            ['post.updated', 2],
          ]);
        } finally {
          stopWatching();
          await outageRelay.stop();
          reader.disconnect();
          await outageBus.close();
          await broker.remove();
          relay = under.relay(bus, logger, { pollIntervalMs: 200 });
          relay.start();
        }
      });

      it('a broker refusing an event for good does not hold back the post’s later events', async () => {
        const post = newPost();
        const publisher = new RecordingPublisher(async (envelope) => {
          if (envelope.key === post.id && envelope.type === 'post.created') throw new PermanentError('refused (in-test broker)', 'broker.refused');
        });
        const { logger: errors, lines } = recordingLogger();
        await relay.stop();
        const refusing = under.relay(publisher, errors, { pollIntervalMs: 100 });
        try {
          refusing.start();
          await store.create(post);
          await store.update({ ...post, title: 'Still goes out', version: 2 }, 1);
          await expect.poll(() => publisher.received.filter((envelope) => envelope.key === post.id).map((envelope) => envelope.type), poll).toEqual(['post.updated']);
          await expect.poll(() => under.pendingEvents([post.id]), poll).toBe(0);
          expect(lines.some((line) => line.code === 'broker.refused')).toBe(true);
        } finally {
          await refusing.stop();
          relay = under.relay(bus, logger, { pollIntervalMs: 200 });
          relay.start();
        }
      });
    });

    describe('expiry', () => {
      it('deletes each expired post once across concurrent runs, with one post.deleted (reason expired, version + 1) each', async () => {
        const author = newId();
        const expiresAt = new Date(Date.now() - 1_000);
        const due: Post[] = [];
        for (let i = 0; i < 40; i += 1) due.push(newPost({ authorId: author, expiresAt, title: `Short-lived ${i}` }));
        await Promise.all(due.map((post) => store.create(post)));
        const keeper = newPost({ authorId: author, expiresAt: FAR_FUTURE });
        await store.create(keeper);
        const ids = due.map((post) => post.id);
        const now = new Date();

        const runs = await Promise.all([store.deleteExpired(now, 1_000), store.deleteExpired(now, 1_000), store.deleteExpired(now, 1_000)]);
        const deleted = runs.flat();
        expect(deleted.map((deletion) => deletion.postId).sort()).toEqual([...ids].sort());
        for (const deletion of deleted) expect(deletion).toMatchObject({ authorId: author, version: 2, reason: 'expired', deletedAt: now.toISOString() });
        expect(await under.storedPosts([...ids, keeper.id])).toEqual([keeper.id]);
        expect(await store.deleteExpired(now, 1_000)).toEqual([]);

        const written = await under.deletedEventsWritten(ids);
        expect(written).toHaveLength(ids.length);
        expect(new Set(written.map((event) => event.postId)).size).toBe(ids.length);
        expect(written.every((event) => event.reason === 'expired')).toBe(true);

        const events = await awaitPublished(ids, ids.length * 2);
        const deletions = events.filter((event) => event.type === 'post.deleted');
        expect(deletions).toHaveLength(ids.length);
        expect(new Set(deletions.map((event) => event.key)).size).toBe(ids.length);
        for (const id of ids) expect(events.filter((event) => event.key === id).map((event) => event.type)).toEqual(['post.created', 'post.deleted']);
      });

      it('takes at most `limit` posts per run and leaves the rest to the next one', async () => {
        const expiresAt = new Date(Date.now() - 1_000);
        const due = Array.from({ length: 5 }, () => newPost({ expiresAt }));
        await Promise.all(due.map((post) => store.create(post)));
        const now = new Date();
        expect(await store.deleteExpired(now, 3)).toHaveLength(3);
        expect(await under.storedPosts(due.map((post) => post.id))).toHaveLength(2);
        expect(await store.deleteExpired(now, 3)).toHaveLength(2);
        expect(await under.storedPosts(due.map((post) => post.id))).toEqual([]);
      });
    });
  });
}
