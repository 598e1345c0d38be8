import { defineService } from '@civildiy/common/runtime';
import { httpSettings } from '@civildiy/common/service';
import { buildApp } from './app.ts';
import { feedServiceEnv } from './config.ts';
import { FeedGenerations } from './feed-generations.ts';
import { feedMetrics } from './feed-metrics.ts';
import { FeedProjection } from './feed-projection.ts';
import { FeedReader } from './feed-reader.ts';
import { CONSUMER_GROUP, FEED_TOPICS, subscribeToFeedEvents } from './handlers.ts';
import { RebuildRunner } from './rebuild-runner.ts';

/** The CQRS read side: global and per-author activity feeds in Redis, built from `posts-events` and `profiles-events`. */
export const feedService = defineService({
  name: 'feed-service',
  env: feedServiceEnv,
  build: async ({ config, logger, events, redis, readiness }) => {
    const prefix = config.REDIS_KEY_PREFIX;
    const generations = new FeedGenerations(redis, prefix);
    const metrics = feedMetrics({ admin: events.admin, group: CONSUMER_GROUP, topics: FEED_TOPICS, generation: () => generations.current() });
    const projection = new FeedProjection({ redis, prefix, tombstoneTtlMs: config.FEED_TOMBSTONE_TTL_MS });
    const rebuilds = new RebuildRunner({
      subscriber: events.subscriber,
      admin: events.admin,
      redis,
      prefix,
      logger,
      tombstoneTtlMs: config.FEED_TOMBSTONE_TTL_MS,
      progressIntervalMs: config.FEED_REBUILD_PROGRESS_MS,
    });
    return {
      // A rebuild started over HTTP stops at shutdown, marked to be resumed.
      background: { 'feed rebuild': rebuilds },
      consumers: {
        feed: subscribeToFeedEvents({ subscriber: events.subscriber, projection, concurrency: config.FEED_CONCURRENCY, onOutcome: (type, outcome, occurredAt) => metrics.record(type, outcome, occurredAt) }),
      },
      http: [
        {
          app: await buildApp({ http: httpSettings(config), reader: new FeedReader(redis, prefix), rebuilds, auth: { jwksUrl: config.AUTH_JWKS_URL }, logger, readiness }),
          port: config.FEED_PORT,
        },
      ],
    };
  },
});
