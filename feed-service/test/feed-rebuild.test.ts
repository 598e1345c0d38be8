import { afterEach, beforeEach, describe, expect, inject, it } from 'vitest';
import { createLogger, newId } from '@civildiy/common';
import { postCreated, postDeleted, postUpdated, profileUpdated } from '@civildiy/common/contracts';
import { RedisStreamsEventBus, createEnvelope, type EventBus, type EventSubscriber, type Subscription } from '@civildiy/common/events';
import { KafkaEventBus } from '@civildiy/common/kafka';
import { Redis } from '@civildiy/common/redis';
import type { App } from '@civildiy/common/service';
import { REDIS_URL, createTestTokens, kafkaSkipNote, kafkaTestBroker, removeRedisPrefix, uniquePrefix } from '@civildiy/common/testing';
import { buildApp } from '../src/app.ts';
import { FeedGenerations } from '../src/feed-generations.ts';
import type { FeedItem } from '../src/feed-item.ts';
import { FeedProjection } from '../src/feed-projection.ts';
import { FeedReader } from '../src/feed-reader.ts';
import { abortRebuild, rebuildFeed, type RebuildProgress } from '../src/feed-rebuild.ts';
import { CONSUMER_GROUP, FEED_TOPICS, subscribeToFeedEvents } from '../src/handlers.ts';
import { RebuildRunner } from '../src/rebuild-runner.ts';
import { deletion, edited, newPost, profile } from './post-history.ts';

const logger = createLogger({ service: 'feed-service', level: 'silent' });
const WAIT = { timeout: 20_000, interval: 25 };
const tokens = await createTestTokens();
const asOperator = { authorization: `Bearer ${await tokens.token(undefined, { roles: ['operator'], expiresIn: '1h' })}` };
const asUser = { authorization: `Bearer ${await tokens.token(undefined, { expiresIn: '1h' })}` };

// The rebuild runs on either event bus adapter: the Kafka one on the run's test broker (skipped,
// with the reason in the title, on a machine without Java outside CI).
const kafka = await kafkaTestBroker(inject('kafkaTestBroker'));
const transports: { name: string; skip?: string; bus(prefix: string): EventBus }[] = [
  { name: 'Redis Streams', bus: (prefix) => new RedisStreamsEventBus({ connection: REDIS_URL, prefix: `${prefix}:`, logger, claimIdleMs: 1_000, blockMs: 200 }) },
  {
    name: `Kafka ${kafkaSkipNote(kafka)}`.trim(),
    ...(kafka.status === 'skip' ? { skip: kafka.reason } : {}),
    bus: (prefix) => {
      if (kafka.status !== 'ready') throw new Error(kafka.reason);
      return new KafkaEventBus({ brokers: kafka.brokers, prefix: `${prefix}.`, logger, sessionTimeoutMs: kafka.sessionTimeoutMs });
    },
  },
];

let prefix: string;
let redis: Redis;
let bus: EventBus;
let live: Subscription;
let generations: FeedGenerations;
let app: App;
/** The rebuilds `app` starts (progress every 20 ms). */
let rebuilds: RebuildRunner;
/** Apps a test built besides `app`, closed after it. */
const moreApps: { app: App; rebuilds: RebuildRunner }[] = [];

for (const transport of transports) describe.skipIf(transport.skip !== undefined)(`on the ${transport.name} event bus`, () => {
  beforeEach(async () => {
    prefix = uniquePrefix('feed-rebuild');
    redis = new Redis(REDIS_URL, { maxRetriesPerRequest: 1 });
    bus = transport.bus(prefix);
    generations = new FeedGenerations(redis, prefix);
    live = subscribeToFeedEvents({ subscriber: bus, projection: new FeedProjection({ redis, prefix }), concurrency: 8 });
    await live.ready;
    ({ app, rebuilds } = await operationsApp(20));
  });

  afterEach(async () => {
    for (const other of moreApps.splice(0)) {
      await other.rebuilds.close();
      await other.app.close();
    }
    await rebuilds?.close();
    await live?.close();
    await app?.close();
    await bus?.close();
    await redis?.quit();
    await removeRedisPrefix(prefix);
  });

  /** feed-service's app with a rebuild runner reporting every `progressIntervalMs`, its replay on `subscriber`. */
  async function operationsApp(progressIntervalMs: number, subscriber: EventSubscriber = bus): Promise<{ app: App; rebuilds: RebuildRunner }> {
    const runner = new RebuildRunner({ subscriber, admin: bus, redis, prefix, logger, progressIntervalMs });
    const built = await buildApp({ reader: new FeedReader(redis, prefix), rebuilds: runner, auth: tokens.keys, logger, readiness: {}, logRequests: false });
    await built.ready();
    return { app: built, rebuilds: runner };
  }

  async function feed(url = '/feed?limit=100') {
    const response = await app.inject({ method: 'GET', url });
    return { status: response.statusCode, items: (response.json() as { items: FeedItem[] }).items };
  }

  /** Resolves once the live group has applied everything published so far. */
  async function liveSettled() {
    await expect
      .poll(async () => {
        const groups = await Promise.all(FEED_TOPICS.map((topic) => bus.groups(topic)));
        return groups.flat().filter((group) => group.name === CONSUMER_GROUP).every((group) => group.lag === 0 && group.pending === 0);
      }, WAIT)
      .toBe(true);
  }

  /**
   * A history with everything the projection must get right: edits, deletes, an update before its
   * create, a delete before its create, redeliveries, and renames including a late older one.
   */
  async function publishHistory(): Promise<{ authors: string[] }> {
    const authors = [newId(), newId(), newId()];
    for (let i = 0; i < 30; i++) {
      const post = newPost({ authorId: authors[i % 3]!, minute: i, title: `Build ${i}` });
      const created = createEnvelope(postCreated, post);
      if (i % 7 === 0) {
        // The update reaches the topic before its create.
        await bus.publish(postUpdated, edited(post, { title: `Build ${i}, revised` }));
        await bus.publishEnvelope(created);
      } else if (i % 11 === 0) {
        await bus.publish(postDeleted, deletion(post));
        await bus.publishEnvelope(created);
      } else {
        await bus.publishEnvelope(created);
        if (i % 5 === 0) await bus.publishEnvelope(created);
        const latest = i % 3 === 0 ? edited(post) : post;
        if (latest !== post) await bus.publish(postUpdated, latest);
        if (i % 4 === 0) await bus.publish(postDeleted, deletion(latest));
      }
    }
    await bus.publish(profileUpdated, profile(authors[0]!, 2, 'Ada'));
    await bus.publish(profileUpdated, profile(authors[0]!, 1, 'ada (first)'));
    await bus.publish(profileUpdated, profile(authors[1]!, 1, 'Bo'));
    return { authors };
  }

  describe('feed rebuild', () => {
    it('rebuilds the same read model as live consumption, serving the old one until it swaps', async () => {
      await publishHistory();
      await liveSettled();
      const before = await generations.dump(1);
      const served = await feed();
      expect(served.items.length).toBeGreaterThan(10);
      expect(Object.keys(before.authors)).toHaveLength(2);

      const reads: Promise<{ status: number; items: FeedItem[] }>[] = [];
      const progress: RebuildProgress[] = [];
      const result = await rebuildFeed({
        subscriber: bus,
        admin: bus,
        redis,
        prefix,
        logger,
        progressIntervalMs: 20,
        onProgress: (report) => {
          progress.push(report);
          reads.push(feed());
        },
      });

      expect(result).toMatchObject({ status: 'swapped', generation: 2, previous: 1, resumed: false });
      expect(result.applied).toBeGreaterThan(0);
      expect(progress.at(-1)).toMatchObject({ generation: 2, caughtUp: true, pending: 0, lag: { 'posts-events': 0, 'profiles-events': 0 } });
      // While it ran, the API kept answering from the old generation, complete.
      for (const read of await Promise.all(reads)) expect(read).toEqual(served);

      expect(await generations.current()).toBe(2);
      expect(await generations.rebuild()).toBeUndefined();
      expect(await generations.dump(2)).toEqual(before);
      expect(await feed()).toEqual(served);
      // The old generation and the replay group are gone.
      expect(await generations.dump(1)).toEqual({ global: [], users: {}, items: {}, authors: {} });
      for (const topic of FEED_TOPICS) expect((await bus.groups(topic)).map((group) => group.name)).toEqual([CONSUMER_GROUP]);
    });

    it('keeps every event published during the rebuild, and applies live events to the new generation after the swap', async () => {
      const { authors } = await publishHistory();
      await liveSettled();
      const during: Promise<unknown>[] = [];
      const duringPosts = [newPost({ minute: 500 }), newPost({ minute: 501 })];
      const result = await rebuildFeed({
        subscriber: bus,
        admin: bus,
        redis,
        prefix,
        logger,
        progressIntervalMs: 20,
        onProgress: () => {
          const next = duringPosts[during.length];
          if (next) during.push(bus.publish(postCreated, next));
        },
      });
      await Promise.all(during);
      expect(result.status).toBe('swapped');
      await expect.poll(async () => (await feed()).items.slice(0, 2).map((item) => item.postId), WAIT).toEqual(duringPosts.map((post) => post.postId).reverse());

      const after = newPost({ minute: 600, authorId: authors[1]! });
      await bus.publish(postCreated, after);
      await bus.publish(profileUpdated, profile(authors[1]!, 2, 'Bo the Builder'));
      await expect.poll(async () => (await feed()).items[0], WAIT).toMatchObject({ postId: after.postId, authorDisplayName: 'Bo the Builder' });
      expect(await generations.current()).toBe(2);
    });

    it('resumes an interrupted rebuild, which the live projection kept writing meanwhile', async () => {
      const first = newPost({ minute: 1 });
      await bus.publish(postCreated, first);
      await liveSettled();

      const stop = new AbortController();
      stop.abort();
      const interrupted = await rebuildFeed({ subscriber: bus, admin: bus, redis, prefix, logger, progressIntervalMs: 20, signal: stop.signal });
      expect(interrupted).toMatchObject({ status: 'interrupted', generation: 2 });
      expect(await generations.rebuild()).toMatchObject({ generation: 2 });
      expect((await feed()).items.map((item) => item.postId)).toEqual([first.postId]);

      // Applied live while the rebuild is stopped: it lands in the generation being rebuilt too.
      const second = newPost({ minute: 2 });
      await bus.publish(postCreated, second);
      await liveSettled();
      expect((await generations.dump(2)).global.map(([postId]) => postId)).toContain(second.postId);

      const resumed = await rebuildFeed({ subscriber: bus, admin: bus, redis, prefix, logger, progressIntervalMs: 20 });
      expect(resumed).toMatchObject({ status: 'swapped', generation: 2, resumed: true });
      expect((await feed()).items.map((item) => item.postId)).toEqual([second.postId, first.postId]);
    });

    it('abandons an unfinished rebuild: its generation and group are deleted and the live feed is untouched', async () => {
      const post = newPost();
      await bus.publish(postCreated, post);
      await liveSettled();
      const stop = new AbortController();
      stop.abort();
      await rebuildFeed({ subscriber: bus, admin: bus, redis, prefix, logger, signal: stop.signal });

      expect(await abortRebuild({ admin: bus, redis, prefix })).toBe(2);
      expect(await abortRebuild({ admin: bus, redis, prefix })).toBeUndefined();
      expect(await generations.rebuild()).toBeUndefined();
      expect(await generations.current()).toBe(1);
      for (const topic of FEED_TOPICS) expect((await bus.groups(topic)).map((group) => group.name)).toEqual([CONSUMER_GROUP]);

      const later = newPost({ minute: 5 });
      await bus.publish(postCreated, later);
      await liveSettled();
      expect((await generations.dump(2)).global).toEqual([]);
      expect((await feed()).items.map((item) => item.postId)).toEqual([later.postId, post.postId]);

      // The next rebuild takes a fresh generation number.
      expect(await rebuildFeed({ subscriber: bus, admin: bus, redis, prefix, logger, progressIntervalMs: 20 })).toMatchObject({ status: 'swapped', generation: 3, previous: 1 });
      expect((await feed()).items.map((item) => item.postId)).toEqual([later.postId, post.postId]);
    });
  });

  describe('feed rebuild over HTTP', () => {
    const rebuildCall = (target: App, method: 'POST' | 'GET' | 'DELETE', headers: Record<string, string> = asOperator) =>
      target.inject({ method, url: '/feed/rebuild', headers });

    /**
     * A rebuild that cannot finish before it is stopped: its replay handles nothing until its first
     * progress check has found it behind, and the next check is a minute later.
     */
    async function slowRebuild(): Promise<{ app: App; rebuilds: RebuildRunner }> {
      let open!: () => void;
      const checked = new Promise<void>((resolve) => (open = resolve));
      const held: EventSubscriber = {
        subscribe: (options) =>
          bus.subscribe({
            ...options,
            handle: async (event, context) => {
              await checked;
              await options.handle(event, context);
            },
          }),
      };
      const slow = await operationsApp(60_000, held);
      moreApps.push(slow);
      for (let i = 0; i < 300; i++) await bus.publish(postCreated, newPost({ minute: i }));
      const started = await rebuildCall(slow.app, 'POST');
      expect(started.statusCode).toBe(202);
      await expect.poll(async () => (await rebuildCall(slow.app, 'GET')).json().progress, WAIT).toMatchObject({ generation: 2, caughtUp: false });
      open();
      return slow;
    }

    it.each(['POST', 'GET', 'DELETE'] as const)('answers %s with 401 without a token and 403 auth.role_required without the operator role, starting nothing', async (method) => {
      const anonymous = await rebuildCall(app, method, {});
      expect({ status: anonymous.statusCode, code: anonymous.json().error.code }).toEqual({ status: 401, code: 'auth.missing_token' });
      const user = await rebuildCall(app, method, asUser);
      expect({ status: user.statusCode, code: user.json().error.code }).toEqual({ status: 403, code: 'auth.role_required' });
      expect(await generations.rebuild()).toBeUndefined();
    });

    it('runs a rebuild an operator starts in the background while the feed serves, swaps, and reports how it ended', async () => {
      await publishHistory();
      await liveSettled();
      const served = await feed();
      const before = await generations.dump(1);

      const started = await rebuildCall(app, 'POST');
      expect(started.statusCode).toBe(202);
      expect(started.json()).toMatchObject({ generation: 2, resumed: false });
      expect((await feed()).items).toEqual(served.items);
      await expect.poll(async () => (await rebuildCall(app, 'GET')).json().last, WAIT).toMatchObject({ status: 'swapped', generation: 2, previous: 1, resumed: false });

      expect((await rebuildCall(app, 'GET')).json()).toMatchObject({ servedGeneration: 2, rebuild: null, running: false, progress: null, lastError: null });
      expect(await generations.dump(2)).toEqual(before);
      expect(await feed()).toEqual(served);
      const nothing = await rebuildCall(app, 'DELETE');
      expect({ status: nothing.statusCode, code: nothing.json().error.code }).toEqual({ status: 404, code: 'feed.rebuild_not_found' });
    });

    it('refuses a second start while one runs with 409 feed.rebuild_running, and DELETE stops it and drops its generation', async () => {
      const slow = await slowRebuild();
      const again = await rebuildCall(slow.app, 'POST');
      expect({ status: again.statusCode, code: again.json().error.code }).toEqual({ status: 409, code: 'feed.rebuild_running' });

      const aborted = await rebuildCall(slow.app, 'DELETE');
      expect(aborted.statusCode).toBe(200);
      expect(aborted.json()).toEqual({ aborted: 2 });
      expect((await rebuildCall(slow.app, 'GET')).json()).toMatchObject({ servedGeneration: 1, rebuild: null, running: false, last: { status: 'interrupted', generation: 2 } });
      for (const topic of FEED_TOPICS) expect((await bus.groups(topic)).map((group) => group.name)).toEqual([CONSUMER_GROUP]);
      await liveSettled();
      expect((await generations.dump(2)).global).toEqual([]);
      expect((await generations.dump(1)).global).toHaveLength(300);
      expect((await feed()).items).toHaveLength(100);
    });

    it('stops a running rebuild when the service shuts down, leaving it marked, and resumes it on the next start', async () => {
      const slow = await slowRebuild();
      await slow.rebuilds.close();
      expect((await rebuildCall(slow.app, 'GET')).json()).toMatchObject({ servedGeneration: 1, rebuild: { generation: 2 }, running: false, last: { status: 'interrupted' } });
      const refused = await rebuildCall(slow.app, 'POST');
      expect(refused.statusCode).toBe(409);

      const resumed = await rebuildCall(app, 'POST');
      expect(resumed.statusCode).toBe(202);
      expect(resumed.json()).toMatchObject({ generation: 2, resumed: true });
      await expect.poll(async () => (await rebuildCall(app, 'GET')).json().last, WAIT).toMatchObject({ status: 'swapped', generation: 2, resumed: true });
      await liveSettled();
      expect((await generations.dump(2)).global).toHaveLength(300);
      expect((await feed()).items).toHaveLength(100);
    });
  });
});
