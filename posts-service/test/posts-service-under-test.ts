import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { count } from 'drizzle-orm';
import { expect } from 'vitest';
import { createLogger, newId } from '@civildiy/common';
import { postCreated, postDeleted, postUpdated } from '@civildiy/common/contracts';
import { type OpenDatabase } from '@civildiy/common/db';
import { RedisStreamsEventBus, type EnvelopeOf, type Subscription } from '@civildiy/common/events';
import { OutboxRelay, watchOutboxCommits } from '@civildiy/common/outbox';
import type { App } from '@civildiy/common/service';
import { createTestTokens, REDIS_URL, removeRedisPrefix, uniquePrefix, type TestTokens, openTestDatabase, type DatabaseTarget } from '@civildiy/common/testing';
import { buildApp } from '../src/app.ts';
import * as schema from '../src/db/schema.ts';
import { PgPostsStore } from '../src/pg-posts-store.ts';

const migrationsFolder = path.join(path.dirname(fileURLToPath(import.meta.url)), '../src/db/migrations');
export const logger = createLogger({ service: 'posts-service', level: process.env.TEST_LOG_LEVEL ?? 'silent' });
export const poll = { timeout: 15_000, interval: 20 };

export type PostEvent = EnvelopeOf<typeof postCreated | typeof postUpdated | typeof postDeleted>;

/**
 * posts-service as main.ts wires it, on one database target: the store waking a real outbox relay
 * that publishes to Redis Streams under a prefix of its own, the HTTP app, and a test consumer group
 * recording every `posts-events` event it receives.
 */
export interface PostsServiceUnderTest {
  prefix: string;
  database: OpenDatabase<typeof schema>;
  store: PgPostsStore;
  app: App;
  tokens: TestTokens;
  /** Events received by the test group, in arrival order. */
  received: PostEvent[];
  /** The events received for one post, in arrival order. */
  eventsOf(postId: string): PostEvent[];
  /** Resolves with the post's events once `n` have arrived (fails after the poll deadline). */
  awaitEvents(postId: string, n: number): Promise<PostEvent[]>;
  /** Headers of a request by `userId` (default a new user) with `username` in its token. */
  as(userId?: string, username?: string): Promise<{ authorization: string }>;
  /** Rows in the posts table and in the outbox (delivered ones are kept, so this only grows). */
  rowCounts(): Promise<{ posts: number; outbox: number }>;
  close(): Promise<void>;
}

export async function startPostsService(target: DatabaseTarget, name: string): Promise<PostsServiceUnderTest> {
  const prefix = uniquePrefix(`posts-${name}`);
  const database = await openTestDatabase(target, { service: 'posts-service', migrationsFolder, schema });
  const bus = new RedisStreamsEventBus({ connection: REDIS_URL, prefix: `${prefix}:`, logger, blockMs: 100 });
  const relay = new OutboxRelay({ db: database.db, publisher: bus, logger, pollIntervalMs: 200 });
  watchOutboxCommits(database.db, () => relay.wake());
  relay.start();
  const store = new PgPostsStore({ db: database.db });
  const tokens = await createTestTokens();
  const app = await buildApp({ store, logger, auth: tokens.keys, readiness: { database: () => database.ping() }, logRequests: false });
  await app.ready();

  const received: PostEvent[] = [];
  const subscription: Subscription = bus.subscribe({
    group: 'posts-service-test',
    events: [postCreated, postUpdated, postDeleted],
    handle: (envelope) => {
      received.push(envelope);
    },
  });
  await subscription.ready;

  const eventsOf = (postId: string) => received.filter((event) => event.data.postId === postId);
  return {
    prefix,
    database,
    store,
    app,
    tokens,
    received,
    eventsOf,
    awaitEvents: async (postId, n) => {
      await expect.poll(() => eventsOf(postId).length, poll).toBeGreaterThanOrEqual(n);
      return eventsOf(postId);
    },
    as: async (userId = newId(), username = 'tester') => ({ authorization: `Bearer ${await tokens.token(userId, { username })}` }),
    rowCounts: async () => {
      const [posts] = await database.db.select({ n: count() }).from(schema.posts);
      const [outbox] = await database.db.select({ n: count() }).from(schema.outboxTable);
      return { posts: posts!.n, outbox: outbox!.n };
    },
    close: async () => {
      await app.close();
      await subscription.close();
      await relay.stop();
      await bus.close();
      await database.close();
      await removeRedisPrefix(prefix);
    },
  };
}
