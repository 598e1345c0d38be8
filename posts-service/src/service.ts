import { fileURLToPath } from 'node:url';
import { expirePosts } from '@civildiy/common/contracts';
import type { Database } from '@civildiy/common/db';
import { defineService, type Closable } from '@civildiy/common/runtime';
import { httpSettings, type ReadinessCheck } from '@civildiy/common/service';
import { buildApp } from './app.ts';
import { postsServiceEnv } from './config.ts';
import * as schema from './db/schema.ts';
import { handleExpiryTasks, scheduleExpiry } from './handlers.ts';
import { openMongoPosts } from './mongo/open-mongo-posts.ts';
import { PgPostsStore } from './pg-posts-store.ts';
import type { PostsStore } from './posts-store.ts';

/**
 * Posts (the write model): versions, `If-Match`, cursor pages, `post.*` events through the outbox,
 * scheduled expiry. On Postgres (default) the runtime opens the database and delivers its outbox;
 * with `POSTS_STORE=mongodb` no Postgres database is opened and the Mongo store's relay runs here.
 */
export const postsService = defineService({
  name: 'posts-service',
  env: postsServiceEnv,
  database: (config) =>
    config.POSTS_STORE === 'postgres'
      ? { schema, migrationsFolder: fileURLToPath(new URL('./db/migrations', import.meta.url)), url: config.POSTS_DATABASE_URL }
      : undefined,
  build: async ({ config, db, logger, tasks, readiness, events, redis }) => {
    let store: PostsStore;
    const checks: Record<string, ReadinessCheck> = { ...readiness };
    const background: Record<string, Closable> = {};
    // Undefined with POSTS_STORE=mongodb (the definition's `database` returned none).
    const postgres: Database<typeof schema> | undefined = db;
    if (config.POSTS_STORE === 'mongodb') {
      const mongo = await openMongoPosts({ url: config.POSTS_MONGODB_URL!, publisher: events.publisher, logger });
      // Events that failed while Redis (the broker on EVENT_BUS=redis) was away go out once it is back, not after their backoff.
      const retryWaiting = () => {
        mongo.relay.retryWaitingNow().catch((error: unknown) => logger.warn({ err: error }, 'mongo outbox: could not retry the waiting events after Redis came back'));
      };
      redis.on('ready', retryWaiting);
      background['mongo outbox relay'] = {
        close: async () => {
          redis.off('ready', retryWaiting);
          await mongo.close();
        },
      };
      checks.database = () => mongo.ping();
      store = mongo.store;
      logger.info({ database: 'mongodb' }, 'posts are kept in MongoDB (POSTS_STORE=mongodb)');
    } else {
      if (!postgres) throw new Error('posts-service: the Postgres database was not opened');
      store = new PgPostsStore({ db: postgres });
    }
    return {
      tasks: { queues: [expirePosts.queue], concurrency: 1, handle: (worker) => handleExpiryTasks({ worker, store }) },
      // The schedule lives in Redis and is shared by every instance, so it stays after a shutdown.
      schedules: [() => scheduleExpiry(tasks, config.POSTS_EXPIRY_INTERVAL_MS)],
      background,
      http: [{ app: await buildApp({ http: httpSettings(config), store, logger, auth: { jwksUrl: config.AUTH_JWKS_URL }, readiness: checks }), port: config.POSTS_PORT }],
    };
  },
});
