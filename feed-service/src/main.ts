import { loadConfigOrExit } from '@civildiy/common';
import { startRuntime } from '@civildiy/common/runtime';
import { httpSettings, listen } from '@civildiy/common/service';
import { buildApp } from './app.ts';
import { feedServiceEnv } from './config.ts';
import { FeedGenerations } from './feed-generations.ts';
import { feedMetrics } from './feed-metrics.ts';
import { FeedProjection } from './feed-projection.ts';
import { FeedReader } from './feed-reader.ts';
import { CONSUMER_GROUP, FEED_TOPICS, subscribeToFeedEvents } from './handlers.ts';

const config = loadConfigOrExit(feedServiceEnv);
const { logger, shutdown, events, redis, readiness } = await startRuntime({
  service: 'feed-service',
  config,
});
const prefix = config.REDIS_KEY_PREFIX;

const generations = new FeedGenerations(redis, prefix);
const metrics = feedMetrics({ admin: events.admin, group: CONSUMER_GROUP, topics: FEED_TOPICS, generation: () => generations.current() });
const projection = new FeedProjection({ redis, prefix, tombstoneTtlMs: config.FEED_TOMBSTONE_TTL_MS });
const subscription = subscribeToFeedEvents({ subscriber: events.subscriber, projection, concurrency: config.FEED_CONCURRENCY, onOutcome: (type, outcome) => metrics.record(type, outcome) });
shutdown.add('feed consumer', () => subscription.close());

const app = await buildApp({ http: httpSettings(config), reader: new FeedReader(redis, prefix), logger, readiness });
await listen(app, { port: config.FEED_PORT, host: config.HOST, shutdown });
