import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { count, eq, inArray } from 'drizzle-orm';
import { MongoClient, type Collection } from 'mongodb';
import { Registry } from 'prom-client';
import { newId, type Logger } from '@civildiy/common';
import type { OpenDatabase } from '@civildiy/common/db';
import type { EnvelopePublisher, EventEnvelope } from '@civildiy/common/events';
import { OutboxRelay, outboxTable, watchOutboxCommits, type RelayPassResult } from '@civildiy/common/outbox';
import { MongoTestServer, mongoTestServerToolingMissing, openTestDatabase, type DatabaseTarget } from '@civildiy/common/testing';
import * as schema from '../src/db/schema.ts';
import { MongoOutboxRelay, type MongoOutboxRelayOptions } from '../src/mongo/mongo-outbox-relay.ts';
import { MongoPostsStore } from '../src/mongo/mongo-posts-store.ts';
import { ensurePostsIndexes, postsCollection, type MongoPostDocument } from '../src/mongo/post-document.ts';
import { PgPostsStore } from '../src/pg-posts-store.ts';
import type { PostsStore } from '../src/posts-store.ts';

const migrationsFolder = path.join(path.dirname(fileURLToPath(import.meta.url)), '../src/db/migrations');

/** Where a posts store under test keeps its data. */
export interface StoreTarget {
  /** For test titles. */
  title: string;
  kind: 'postgres' | 'mongodb';
  /** Why this target is skipped here, or undefined when it runs (the reason goes into the suite's title). */
  skipReason: string | undefined;
  /** Whether the database deletes by itself what a TTL index says (a real MongoDB's TTL monitor; not mongo-java-server). */
  ttlMonitor: boolean;
  /** Opens an empty store on this target (a database of its own). */
  open(): Promise<StoreUnderTest>;
}

/** The relay of a store under test: the runtime's `OutboxRelay` on Postgres, `MongoOutboxRelay` on MongoDB. */
export interface RelayUnderTest {
  start(): void;
  stop(): Promise<void>;
  publishPending(): Promise<RelayPassResult>;
  retryWaitingNow(): Promise<number>;
  /** Publishes that failed so far (`civildiy_outbox_published_total{outcome="failed"}` of the relay's own registry). */
  publishFailures(): Promise<number>;
}

/** A relay and the registry of its metrics, as a {@link RelayUnderTest}. */
function underTest(relay: Omit<RelayUnderTest, 'publishFailures'>, registry: Registry): RelayUnderTest {
  return {
    start: () => relay.start(),
    stop: () => relay.stop(),
    publishPending: () => relay.publishPending(),
    retryWaitingNow: () => relay.retryWaitingNow(),
    publishFailures: async () => {
      const metric = await registry.getSingleMetric('civildiy_outbox_published_total')?.get();
      return (metric?.values ?? []).filter((value) => value.labels.outcome === 'failed').reduce((sum, value) => sum + value.value, 0);
    },
  };
}

/** Tuning of a relay under test (both relays take these). */
export interface RelayTuning {
  pollIntervalMs?: number;
  deliveryTimeoutMs?: number;
  leaseMs?: number;
  backoff?: { baseMs?: number; maxMs?: number };
}

/** A posts store on one target, with what the tests need to look behind the port. */
export interface StoreUnderTest {
  store: PostsStore;
  kind: 'postgres' | 'mongodb';
  /** A relay publishing this store's outbox to `publisher`, woken by the store's writes (not started). */
  relay(publisher: EnvelopePublisher, logger: Logger, tuning?: RelayTuning): RelayUnderTest;
  /** Events of these posts written to the outbox and still to be published (not those that failed for good). */
  pendingEvents(postIds: readonly string[]): Promise<number>;
  /** Of these posts, those still stored as posts (not deleted; a Mongo tombstone does not count). */
  storedPosts(postIds: readonly string[]): Promise<string[]>;
  /** Posts stored, and events ever written to the outbox: both only grow while nothing is deleted. */
  writeCounts(): Promise<{ posts: number; outbox: number }>;
  /** The `post.deleted` events ever written for these posts (from the outbox, published or not). */
  deletedEventsWritten(postIds: readonly string[]): Promise<{ postId: string; reason: string }[]>;
  /** On MongoDB: the posts collection (documents, indexes), and more databases on the same server. */
  mongo?: {
    collection: Collection<MongoPostDocument>;
    client: MongoClient;
    /** The server's URL (no database in it). */
    url: string;
    /** A posts collection with its indexes in a new database of its own (dropped at the end). */
    newCollection(): Promise<{ collection: Collection<MongoPostDocument>; databaseName: string }>;
  };
  /** On Postgres: the database. */
  postgres?: OpenDatabase<typeof schema>;
  close(): Promise<void>;
}

function pgTarget(database: DatabaseTarget): StoreTarget {
  return {
    title: `PgPostsStore on ${database}`,
    kind: 'postgres',
    skipReason: undefined,
    ttlMonitor: false,
    open: async () => {
      const db = await openTestDatabase(database, { service: 'posts-service', migrationsFolder, schema });
      const store = new PgPostsStore({ db: db.db });
      // Watched once (as the runtime does); every relay of the test is woken after each commit that wrote to the outbox.
      const relays: OutboxRelay[] = [];
      watchOutboxCommits(db.db, () => {
        for (const relay of relays) relay.wake();
      });
      return {
        store,
        kind: 'postgres',
        postgres: db,
        relay: (publisher, logger, tuning = {}) => {
          const registry = new Registry();
          const relay = new OutboxRelay({ db: db.db, publisher, logger, registry, ...tuning });
          relays.push(relay);
          return underTest(relay, registry);
        },
        pendingEvents: async (postIds) => {
          if (postIds.length === 0) return 0;
          const rows = await db.db
            .select({ sentAt: outboxTable.sentAt, failedAt: outboxTable.failedAt })
            .from(outboxTable)
            .where(inArray(outboxTable.key, [...postIds]));
          // Rows marked failed (undeliverable) wait for an operator, not for the relay.
          return rows.filter((row) => row.sentAt === null && row.failedAt === null).length;
        },
        storedPosts: async (postIds) => {
          if (postIds.length === 0) return [];
          const rows = await db.db.select({ id: schema.posts.id }).from(schema.posts).where(inArray(schema.posts.id, [...postIds]));
          return rows.map((row) => row.id);
        },
        writeCounts: async () => {
          const [posts] = await db.db.select({ n: count() }).from(schema.posts);
          const [outbox] = await db.db.select({ n: count() }).from(outboxTable);
          return { posts: posts!.n, outbox: outbox!.n };
        },
        deletedEventsWritten: async (postIds) => {
          if (postIds.length === 0) return [];
          const rows = await db.db
            .select({ key: outboxTable.key, payload: outboxTable.payload })
            .from(outboxTable)
            .where(eq(outboxTable.name, 'post.deleted'));
          const wanted = new Set(postIds);
          return rows
            .filter((row) => wanted.has(row.key))
            .map((row) => ({ postId: row.key, reason: (row.payload as { data: { reason: string } }).data.reason }));
        },
        close: async () => {
          await Promise.all(relays.map((relay) => relay.stop()));
          await db.close();
        },
      };
    },
  };
}

/**
 * A MongoDB target: a mongo-java-server started for the store (and stopped with it), or the real
 * MongoDB at `url` (a database of its own, dropped at the end).
 */
function mongoTarget(options: { title: string; url?: string; skipReason: string | undefined; ttlMonitor: boolean }): StoreTarget {
  return {
    title: options.title,
    kind: 'mongodb',
    skipReason: options.skipReason,
    ttlMonitor: options.ttlMonitor,
    open: async () => {
      const server = options.url ? undefined : await MongoTestServer.start();
      const client = new MongoClient(options.url ?? server!.url, { serverSelectionTimeoutMS: 10_000 });
      try {
        await client.connect();
      } catch (error) {
        await server?.stop();
        throw error;
      }
      const databases: string[] = [];
      const newCollection = async () => {
        const databaseName = `posts_test_${newId().replaceAll('-', '')}`;
        databases.push(databaseName);
        const created = postsCollection(client.db(databaseName));
        await ensurePostsIndexes(created);
        return { collection: created, databaseName };
      };
      const { collection } = await newCollection();
      const store = new MongoPostsStore({ collection });
      const written: EventEnvelope[] = [];
      store.onEventsWritten((events) => written.push(...events));
      const relays: MongoOutboxRelay[] = [];
      return {
        store,
        kind: 'mongodb',
        mongo: { collection, client, url: options.url ?? server!.url, newCollection },
        relay: (publisher, logger, tuning = {}) => {
          const registry = new Registry();
          const relayOptions: MongoOutboxRelayOptions = { collection, publisher, logger, registry, ...tuning };
          const relay = new MongoOutboxRelay(relayOptions);
          store.onEventsWritten(() => relay.wake());
          relays.push(relay);
          return underTest(relay, registry);
        },
        pendingEvents: async (postIds) => {
          const documents = await collection.find({ _id: { $in: [...postIds] } }, { projection: { pendingEvents: 1 } }).toArray();
          return documents.reduce((sum, document) => sum + (document.pendingEvents?.length ?? 0), 0);
        },
        storedPosts: async (postIds) => {
          const documents = await collection.find({ _id: { $in: [...postIds] }, deletedAt: null }, { projection: { _id: 1 } }).toArray();
          return documents.map((document) => document._id);
        },
        writeCounts: async () => ({ posts: await collection.countDocuments({ deletedAt: null }), outbox: written.length }),
        deletedEventsWritten: async (postIds) => {
          const wanted = new Set(postIds);
          return written
            .filter((event) => event.type === 'post.deleted' && wanted.has(event.key))
            .map((event) => ({ postId: event.key, reason: (event.data as { reason: string }).reason }));
        },
        close: async () => {
          await Promise.all(relays.map((relay) => relay.stop()));
          if (options.url) for (const name of databases) await client.db(name).dropDatabase().catch(() => undefined);
          await client.close();
          await server?.stop();
        },
      };
    },
  };
}

const CI = process.env.CI === 'true';

/**
 * Every target of the posts store's contract: `PgPostsStore` on PGlite and on the Postgres server,
 * `MongoPostsStore` on mongo-java-server (a MongoDB stand-in run from Maven Central, Java 17+: no
 * replica set, so no transactions, which this store does not use, and no TTL monitor), and on the
 * real MongoDB at `MONGODB_TEST_URL` when it is set.
 */
export async function storeTargets(): Promise<StoreTarget[]> {
  const tooling = await mongoTestServerToolingMissing();
  if (tooling && CI) throw new Error(`The MongoDB test server cannot run under CI: ${tooling}`);
  const realUrl = process.env.MONGODB_TEST_URL;
  return [
    pgTarget('PGlite'),
    pgTarget('Postgres server'),
    mongoTarget({
      title: 'MongoPostsStore on mongo-java-server (in-memory stand-in: no transactions, no TTL monitor)',
      skipReason: tooling,
      ttlMonitor: false,
    }),
    mongoTarget({
      title: 'MongoPostsStore on the real MongoDB at MONGODB_TEST_URL',
      url: realUrl,
      skipReason: realUrl ? undefined : 'set MONGODB_TEST_URL (e.g. mongodb://127.0.0.1:27017/?replicaSet=rs0) to run it against a real MongoDB',
      ttlMonitor: true,
    }),
  ];
}

/** For a suite's title: `(skipped: <reason>)` when the target is skipped here. */
export function skipNote(target: StoreTarget): string {
  return target.skipReason === undefined ? '' : ` (skipped: ${target.skipReason})`;
}
