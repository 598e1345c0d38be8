import { MongoClient, type MongoClientOptions } from 'mongodb';
import type { Logger } from '@civildiy/common';
import type { EnvelopePublisher } from '@civildiy/common/events';
import type { Closable } from '@civildiy/common/runtime';
import { MongoOutboxRelay, type MongoOutboxRelayOptions } from './mongo-outbox-relay.ts';
import { MongoPostsStore } from './mongo-posts-store.ts';
import { ensurePostsIndexes, postsCollection } from './post-document.ts';

/** Options of {@link openMongoPosts}. */
export interface OpenMongoPostsOptions {
  /** `POSTS_MONGODB_URL`, e.g. `mongodb://mongo:27017/posts?replicaSet=rs0`; the database is the URL's (default `posts`). */
  url: string;
  /** Where the relay publishes (the event bus). */
  publisher: EnvelopePublisher;
  logger: Logger;
  /** The relay's tuning (see {@link MongoOutboxRelayOptions}). */
  relay?: Omit<MongoOutboxRelayOptions, 'collection' | 'publisher' | 'logger'>;
  /** Over the defaults (`appName` posts-service, servers selected within 5 s). */
  client?: MongoClientOptions;
}

/** The posts store on MongoDB with its running relay: what posts-service runs with `POSTS_STORE=mongodb`. */
export interface MongoPosts extends Closable {
  store: MongoPostsStore;
  relay: MongoOutboxRelay;
  /** Resolves when MongoDB answers (the readiness check). */
  ping(): Promise<void>;
  /** Stops the relay (after its batch in progress), then closes the connections. */
  close(): Promise<void>;
}

/** The database a MongoDB URL names (`posts` when it names none). */
export function databaseOf(url: string): string {
  const name = /^mongodb(?:\+srv)?:\/\/[^/]*\/([^?]+)/.exec(url)?.[1];
  return name ? decodeURIComponent(name) : 'posts';
}

/**
 * Connects to MongoDB, makes sure of the posts collection's indexes, and starts the relay, woken by
 * every write of the store. Rejects (with nothing left open) when MongoDB cannot be reached.
 */
export async function openMongoPosts(options: OpenMongoPostsOptions): Promise<MongoPosts> {
  // A request fails fast (503 database.unavailable) while MongoDB is away, instead of waiting 30 s.
  const client = new MongoClient(options.url, { appName: 'posts-service', serverSelectionTimeoutMS: 5_000, ...options.client });
  try {
    await client.connect();
    const db = client.db(databaseOf(options.url));
    const collection = postsCollection(db);
    await ensurePostsIndexes(collection);
    const store = new MongoPostsStore({ collection, logger: options.logger });
    const relay = new MongoOutboxRelay({ collection, publisher: options.publisher, logger: options.logger, ...options.relay });
    store.onEventsWritten(() => relay.wake());
    relay.start();
    let closed: Promise<void> | undefined;
    return {
      store,
      relay,
      ping: async () => {
        await db.command({ ping: 1 });
      },
      close: () =>
        (closed ??= (async () => {
          await relay.stop();
          await client.close();
        })()),
    };
  } catch (error) {
    await client.close().catch(() => undefined);
    throw error;
  }
}
