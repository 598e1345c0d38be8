import { expect } from 'vitest';
import { createLogger, newId } from '@civildiy/common';
import { postCreated, postDeleted, postUpdated } from '@civildiy/common/contracts';
import { RedisStreamsEventBus, type EnvelopeOf, type Subscription } from '@civildiy/common/events';
import type { App } from '@civildiy/common/service';
import { createTestTokens, REDIS_URL, removeRedisPrefix, uniquePrefix, type TestTokens } from '@civildiy/common/testing';
import { buildApp } from '../src/app.ts';
import type { PostsStore } from '../src/posts-store.ts';
import type { StoreTarget, StoreUnderTest } from './store-targets.ts';

export const logger = createLogger({ service: 'posts-service', level: process.env.TEST_LOG_LEVEL ?? 'silent' });
export const poll = { timeout: 15_000, interval: 20 };

export type PostEvent = EnvelopeOf<typeof postCreated | typeof postUpdated | typeof postDeleted>;

/**
 * posts-service as main.ts wires it, on one store target (Postgres/PGlite or MongoDB): the store
 * waking its real outbox relay that publishes to Redis Streams under a prefix of its own, the HTTP
 * app, and a test consumer group recording every `posts-events` event it receives.
 */
export interface PostsServiceUnderTest {
  prefix: string;
  /** The store and what the tests may look at behind it (rows or documents). */
  storage: StoreUnderTest;
  store: PostsStore;
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
  /** Posts stored and events ever written to the outbox (both only grow while nothing is deleted). */
  rowCounts(): Promise<{ posts: number; outbox: number }>;
  close(): Promise<void>;
}

export async function startPostsService(target: StoreTarget, name: string): Promise<PostsServiceUnderTest> {
  const prefix = uniquePrefix(`posts-${name}`);
  const storage = await target.open();
  const bus = new RedisStreamsEventBus({ connection: REDIS_URL, prefix: `${prefix}:`, logger, blockMs: 100 });
  const relay = storage.relay(bus, logger, { pollIntervalMs: 200 });
  relay.start();
  const store = storage.store;
  const tokens = await createTestTokens();
  const app = await buildApp({ store, logger, auth: tokens.keys, readiness: {}, logRequests: false });
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
    storage,
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
    rowCounts: () => storage.writeCounts(),
    close: async () => {
      await app.close();
      await subscription.close();
      await relay.stop();
      await bus.close();
      await storage.close();
      await removeRedisPrefix(prefix);
    },
  };
}
