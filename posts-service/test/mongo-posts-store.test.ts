import pino from 'pino';
import { MongoClient, type UpdateFilter } from 'mongodb';
import { Registry } from 'prom-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ConfigError, loadConfig, newId } from '@civildiy/common';
import type { EnvelopePublisher, EventEnvelope } from '@civildiy/common/events';
import { freePort } from '@civildiy/common/testing';
import { postsServiceEnv } from '../src/config.ts';
import { MongoOutboxRelay } from '../src/mongo/mongo-outbox-relay.ts';
import { MongoPostsStore } from '../src/mongo/mongo-posts-store.ts';
import { databaseOf, openMongoPosts } from '../src/mongo/open-mongo-posts.ts';
import { POSTS_INDEXES, postsCollection, type MongoPostDocument } from '../src/mongo/post-document.ts';
import type { Post } from '../src/posts-store.ts';
import { logger, poll } from './posts-service-under-test.ts';
import { skipNote, storeTargets, type StoreUnderTest } from './store-targets.ts';

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

/** `url` naming the database `name` (the URL's own database, if any, replaced; its options kept). */
function withDatabase(url: string, name: string): string {
  return url.replace(/^(mongodb(?:\+srv)?:\/\/[^/?]+)(\/[^?]*)?/, `$1/${name}`);
}

describe('POSTS_STORE configuration', () => {
  const base = { AUTH_JWKS_URL: 'http://127.0.0.1:8101/.well-known/jwks.json' };

  it('defaults to postgres and requires POSTS_MONGODB_URL, a mongodb:// URL, with mongodb', () => {
    expect(loadConfig(postsServiceEnv, base).POSTS_STORE).toBe('postgres');
    expect(loadConfig(postsServiceEnv, { ...base, POSTS_STORE: 'mongodb', POSTS_MONGODB_URL: 'mongodb://mongo:27017/posts?replicaSet=rs0' })).toMatchObject({
      POSTS_STORE: 'mongodb',
      POSTS_MONGODB_URL: 'mongodb://mongo:27017/posts?replicaSet=rs0',
    });
    const variables = (env: Record<string, string>) => {
      try {
        loadConfig(postsServiceEnv, { ...base, ...env });
      } catch (error) {
        if (error instanceof ConfigError) return error.problems.map((problem) => problem.variable);
        throw error;
      }
      return [];
    };
    expect(variables({ POSTS_STORE: 'mongodb' })).toEqual(['POSTS_MONGODB_URL']);
    expect(variables({ POSTS_STORE: 'mongodb', POSTS_MONGODB_URL: 'postgres://db/posts' })).toEqual(['POSTS_MONGODB_URL']);
    expect(variables({ POSTS_STORE: 'cassandra' })).toEqual(['POSTS_STORE']);
  });

  it('answers 503 database.unavailable while MongoDB cannot be reached, and does not start without it', async () => {
    const nowhere = `mongodb://127.0.0.1:${await freePort()}/posts`;
    const client = new MongoClient(nowhere, { serverSelectionTimeoutMS: 200 });
    try {
      const store = new MongoPostsStore({ collection: postsCollection(client.db()) });
      await expect(store.find(newId(), new Date())).rejects.toMatchObject({ code: 'database.unavailable', statusCode: 503, retryAfterSeconds: 1 });
      await expect(store.create(newPost())).rejects.toMatchObject({ code: 'database.unavailable' });
    } finally {
      await client.close();
    }
    await expect(openMongoPosts({ url: nowhere, publisher: new RecordingPublisher(), logger, client: { serverSelectionTimeoutMS: 200 } })).rejects.toThrow(/ECONNREFUSED/);
  });

  it('uses the database the URL names, posts when it names none', () => {
    expect(databaseOf('mongodb://mongo:27017/posts?replicaSet=rs0')).toBe('posts');
    expect(databaseOf('mongodb://a:1,b:2/civildiy_posts')).toBe('civildiy_posts');
    expect(databaseOf('mongodb+srv://user:pw@cluster.example.net/?retryWrites=true')).toBe('posts');
    expect(databaseOf('mongodb://127.0.0.1:27017')).toBe('posts');
  });
});

/**
 * What only the MongoDB store has: the post document with its outbox, tombstones and their TTL
 * purge, the relay's leases, events that can never be published, and documents that are not posts.
 * On mongo-java-server, which has no TTL monitor, the purge is checked by its index definition; a
 * real MongoDB (`MONGODB_TEST_URL`) is waited on to delete a tombstone by itself.
 */
for (const target of (await storeTargets()).filter((candidate) => candidate.kind === 'mongodb')) {
  describe.skipIf(target.skipReason !== undefined)(`MongoPostsStore specifics on ${target.title.replace(/^MongoPostsStore on /, '')}${skipNote(target)}`, () => {
    let under: StoreUnderTest;

    beforeAll(async () => {
      under = await target.open();
    });

    afterAll(async () => {
      await under?.close();
    });

    /** A store and a relay (not started) on a database of their own, publishing to an in-test publisher. */
    async function isolated(options: { publisher?: RecordingPublisher; logger?: pino.Logger } = {}) {
      const { collection } = await under.mongo!.newCollection();
      const publisher = options.publisher ?? new RecordingPublisher();
      const store = new MongoPostsStore({ collection, logger: options.logger ?? logger });
      const relay = new MongoOutboxRelay({ collection, publisher, logger: options.logger ?? logger, registry: new Registry(), backoff: { baseMs: 50, maxMs: 200 } });
      return { collection, publisher, store, relay };
    }

    it('keeps a post as one document with its event waiting in it until published', async () => {
      const { collection, store, relay, publisher } = await isolated();
      const post = newPost({ expiresAt: new Date('2999-01-01T00:00:00.000Z') });
      await store.create(post, { key: 'k-1', requestHash: 'h-1' });

      const stored = await collection.findOne({ _id: post.id });
      expect(stored).toMatchObject({
        authorId: post.authorId,
        authorUsername: 'maker',
        title: 'Workbench',
        body: 'Beech top, pine legs',
        tags: ['bench'],
        expiresAt: post.expiresAt,
        version: 1,
        createdAt: post.createdAt,
        updatedAt: post.updatedAt,
        idempotencyKey: 'k-1',
        requestHash: 'h-1',
        idempotencyId: expect.any(String),
        publishAfter: expect.any(Date),
      });
      expect(stored!.pendingEvents).toHaveLength(1);
      expect(stored!.pendingEvents[0]).toMatchObject({ type: 'post.created', key: post.id, data: { postId: post.id, version: 1 } });
      expect(stored!.deletedAt).toBeUndefined();
      expect(await under.mongo!.client.db(collection.dbName).listCollections({}, { nameOnly: true }).toArray()).toEqual([expect.objectContaining({ name: 'posts' })]);

      await expect(relay.publishPending()).resolves.toEqual({ published: 1, failed: 0 });
      expect(publisher.received.map((envelope) => envelope.id)).toEqual([stored!.pendingEvents[0]!.id]);
      const published = await collection.findOne({ _id: post.id });
      expect(published!.pendingEvents).toEqual([]);
      expect(published).not.toHaveProperty('publishAfter');
      expect(published).not.toHaveProperty('purgeAt');
    });

    it('has indexes for author and tag pages newest first, expiry, idempotency, the relay, and a TTL index on purgeAt only', async () => {
      const indexes = await under.mongo!.collection.listIndexes().toArray();
      const byName = Object.fromEntries(indexes.map((index) => [index.name as string, index]));
      expect(byName.author_newest).toMatchObject({ key: { authorId: 1, _id: -1 } });
      expect(byName.tags_newest).toMatchObject({ key: { tags: 1, _id: -1 } });
      expect(byName.expires_at).toMatchObject({ key: { expiresAt: 1 } });
      expect(byName.idempotency).toMatchObject({ key: { idempotencyId: 1 }, unique: true, sparse: true });
      expect(byName.publish_after).toMatchObject({ key: { publishAfter: 1 }, sparse: true });
      // The database deletes a document once its purgeAt has passed: set only on a tombstone whose events are out.
      expect(byName.purge_at).toMatchObject({ key: { purgeAt: 1 }, expireAfterSeconds: 0 });
      expect(indexes.filter((index) => index.expireAfterSeconds !== undefined).map((index) => index.name)).toEqual(['purge_at']);
      expect(indexes.map((index) => index.name).sort()).toEqual(['_id_', ...POSTS_INDEXES.map((index) => index.name)].sort());
    });

    it('turns a deleted post into a tombstone without content, hidden from reads, and marks it for purge once post.deleted is out', async () => {
      const { collection, store, relay, publisher } = await isolated();
      const post = newPost();
      await store.create(post, { key: 'k', requestHash: 'h' });
      expect(await store.delete({ postId: post.id, authorId: post.authorId, version: 2, reason: 'author', deletedAt: new Date().toISOString() }, 1)).toBe(true);

      const tombstone = await collection.findOne({ _id: post.id });
      expect(tombstone).toMatchObject({ authorId: post.authorId, version: 2, deletedAt: expect.any(Date) });
      for (const field of ['title', 'body', 'tags', 'authorUsername', 'expiresAt', 'idempotencyId', 'idempotencyKey', 'requestHash', 'purgeAt']) {
        expect(tombstone).not.toHaveProperty(field);
      }
      expect(tombstone!.pendingEvents.map((event) => event.type)).toEqual(['post.created', 'post.deleted']);
      expect(await store.find(post.id, new Date())).toBeUndefined();
      expect(await store.list({ authorId: post.authorId, limit: 10, now: new Date() })).toEqual([]);

      const before = Date.now();
      await expect(relay.publishPending()).resolves.toEqual({ published: 2, failed: 0 });
      expect(publisher.received.map((envelope) => envelope.type)).toEqual(['post.created', 'post.deleted']);
      const purgeable = await collection.findOne({ _id: post.id });
      expect(purgeable!.pendingEvents).toEqual([]);
      expect(purgeable!.purgeAt!.getTime()).toBeGreaterThanOrEqual(before);
      expect(purgeable).not.toHaveProperty('publishAfter');
    });

    it.skipIf(!target.ttlMonitor)(
      `lets MongoDB delete a tombstone by itself once its events are out${target.ttlMonitor ? '' : ' (skipped: mongo-java-server has no TTL monitor; the index definition is checked above)'}`,
      async () => {
        // The TTL monitor runs every 60 s; a test server may let us make it run every second.
        await under.mongo!.client.db('admin').command({ setParameter: 1, ttlMonitorSleepSecs: 1 }).catch(() => undefined);
        const { collection, store, relay } = await isolated();
        const post = newPost();
        await store.create(post);
        await store.delete({ postId: post.id, authorId: post.authorId, version: 2, reason: 'author', deletedAt: new Date().toISOString() }, 1);
        await relay.publishPending();
        expect(await collection.findOne({ _id: post.id })).toMatchObject({ purgeAt: expect.any(Date) });
        await expect.poll(() => collection.findOne({ _id: post.id }), { timeout: 120_000, interval: 1_000 }).toBeNull();
      },
      150_000,
    );

    it('leaves the posts of a relay that died to another once its lease has passed, with the same envelope ids', async () => {
      const { collection, store } = await isolated();
      const post = newPost();
      await store.create(post);
      const [written] = (await collection.findOne({ _id: post.id }))!.pendingEvents;

      // The dying process: its own connection, a relay holding the post, a publish that never ends.
      const dyingClient = new MongoClient(under.mongo!.url);
      let entered!: () => void;
      const publishing = new Promise<void>((resolve) => (entered = resolve));
      const dying = new MongoOutboxRelay({
        collection: postsCollection(dyingClient.db(collection.dbName)),
        publisher: new RecordingPublisher(async () => {
          entered();
          await new Promise<never>(() => {});
        }),
        logger,
        registry: new Registry(),
        leaseMs: 600_000,
        deliveryTimeoutMs: 300_000,
      });
      void dying.publishPending().catch(() => undefined);
      await publishing;
      await dyingClient.close(true);

      const survivor = new RecordingPublisher();
      const relay = new MongoOutboxRelay({ collection, publisher: survivor, logger, registry: new Registry() });
      await expect(relay.publishPending()).resolves.toEqual({ published: 0, failed: 0 });
      expect(await relay.retryWaitingNow()).toBe(0); // a lease is not a backoff
      // The lease has passed (moved back in time here rather than waited for).
      await collection.updateOne({ _id: post.id }, { $set: { publishAfter: new Date(Date.now() - 1_000) } });
      await expect(relay.publishPending()).resolves.toEqual({ published: 1, failed: 0 });
      expect(survivor.received.map((envelope) => envelope.id)).toEqual([written!.id]);
      const settled = await collection.findOne({ _id: post.id });
      expect(settled!.pendingEvents).toEqual([]);
      expect(settled).not.toHaveProperty('leaseId');
    });

    it('moves an event that is not an envelope to failedEvents, logged and counted, and publishes the post’s later events; its tombstone is kept', async () => {
      const { logger: errors, lines } = recordingLogger();
      const { collection, store, relay, publisher } = await isolated({ logger: errors });
      const post = newPost();
      await store.create(post);
      // Written by hand or corrupted: an object that is not an envelope, and not even an object.
      await collection.updateOne({ _id: post.id }, { $push: { pendingEvents: { $each: [{ id: 'not-an-envelope' }, 'garbage'] } } } as unknown as UpdateFilter<MongoPostDocument>);
      await store.update({ ...post, title: 'Edited', version: 2 }, 1);

      await expect(relay.publishPending()).resolves.toEqual({ published: 2, failed: 2 });
      expect(publisher.received.map((envelope) => envelope.type)).toEqual(['post.created', 'post.updated']);
      const stored = await collection.findOne({ _id: post.id });
      expect(stored!.pendingEvents).toEqual([]);
      expect(stored!.failedEvents).toEqual([
        { event: { id: 'not-an-envelope' }, code: 'outbox.invalid_envelope', error: expect.any(String), failedAt: expect.any(Date) },
        { event: 'garbage', code: 'outbox.invalid_envelope', error: expect.any(String), failedAt: expect.any(Date) },
      ]);
      expect(lines.filter((line) => line.code === 'outbox.invalid_envelope')).toHaveLength(2);
      expect(await relay.counts()).toEqual({ pending: 0, failed: 2 });

      await store.delete({ postId: post.id, authorId: post.authorId, version: 3, reason: 'author', deletedAt: new Date().toISOString() }, 2);
      await expect(relay.publishPending()).resolves.toEqual({ published: 1, failed: 0 });
      const tombstone = await collection.findOne({ _id: post.id });
      // Not purged: what failed stays for an operator. Not due either: the relay is done with it.
      expect(tombstone).not.toHaveProperty('purgeAt');
      expect(tombstone).not.toHaveProperty('publishAfter');
      expect(tombstone!.failedEvents).toHaveLength(2);
    });

    it('retries a failed publish after its backoff, counting the attempts, and clears them once it is out', async () => {
      let failuresLeft = 2;
      const publisher = new RecordingPublisher(async () => {
        if (failuresLeft-- > 0) throw new Error('broker unreachable (in-test publisher)');
      });
      const { collection, store, relay } = await isolated({ publisher });
      const post = newPost();
      await store.create(post);

      const started = Date.now();
      await expect(relay.publishPending()).resolves.toEqual({ published: 0, failed: 1 });
      const waiting = await collection.findOne({ _id: post.id });
      expect(waiting).toMatchObject({ publishAttempts: 1 });
      expect(waiting!.publishAfter!.getTime()).toBeGreaterThanOrEqual(started + 50);
      expect(waiting).not.toHaveProperty('leaseId');
      await expect(relay.publishPending()).resolves.toEqual({ published: 0, failed: 0 }); // still waiting out its backoff

      expect(await relay.retryWaitingNow()).toBe(1);
      await expect(relay.publishPending()).resolves.toEqual({ published: 0, failed: 1 });
      expect(await collection.findOne({ _id: post.id })).toMatchObject({ publishAttempts: 2 });
      await expect.poll(async () => (await relay.publishPending()).published, poll).toBe(1);
      const done = await collection.findOne({ _id: post.id });
      expect(done!.pendingEvents).toEqual([]);
      for (const field of ['publishAttempts', 'publishAfter', 'leaseId']) expect(done).not.toHaveProperty(field);
    });

    it('answers posts.invalid_document for a document that is not a post, and posts.expire passes over it', async () => {
      const { logger: errors, lines } = recordingLogger();
      const { collection, store } = await isolated({ logger: errors });
      const now = new Date();
      const broken = { _id: newId(), authorId: newId(), version: 'one', pendingEvents: [] } as unknown as MongoPostDocument;
      const brokenExpired = {
        _id: newId(),
        authorId: 'not-a-uuid',
        title: 'x',
        body: 'y',
        tags: [],
        version: 1,
        expiresAt: new Date(now.getTime() - 1_000),
        createdAt: now,
        updatedAt: now,
        pendingEvents: [],
      } satisfies MongoPostDocument;
      await collection.insertMany([broken, brokenExpired]);
      const due = newPost({ expiresAt: new Date(now.getTime() - 1_000) });
      await store.create(due);

      await expect(store.find(broken._id, now)).rejects.toMatchObject({ code: 'posts.invalid_document', statusCode: 500 });
      await expect(store.list({ authorId: broken.authorId, limit: 10, now })).rejects.toMatchObject({ code: 'posts.invalid_document' });

      expect((await store.deleteExpired(now, 10)).map((deletion) => deletion.postId)).toEqual([due.id]);
      expect(lines.some((line) => line.postId === brokenExpired._id)).toBe(true);
      expect(await collection.findOne({ _id: brokenExpired._id })).toMatchObject({ version: 1, pendingEvents: [] });
    });

    it('runs as posts-service runs it: connects, makes the indexes, publishes each write at once, answers ping, closes', async () => {
      const databaseName = `posts_open_${newId().replaceAll('-', '')}`;
      const publisher = new RecordingPublisher();
      // A poll far away: only the store's wake-up after the write can publish in time.
      const posts = await openMongoPosts({ url: withDatabase(under.mongo!.url, databaseName), publisher, logger, relay: { pollIntervalMs: 600_000, registry: new Registry() } });
      try {
        await posts.ping();
        const post = newPost();
        await posts.store.create(post);
        await expect.poll(() => publisher.received.map((envelope) => envelope.key), poll).toEqual([post.id]);
        const indexes = await under.mongo!.client.db(databaseName).collection('posts').listIndexes().toArray();
        expect(indexes.map((index) => index.name)).toContain('purge_at');
      } finally {
        await posts.close();
        await under.mongo!.client.db(databaseName).dropDatabase();
      }
      await expect(posts.ping()).rejects.toThrow();
    });
  });
}
