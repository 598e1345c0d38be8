import { fileURLToPath } from 'node:url';
import { expirePosts } from '@civildiy/common/contracts';
import { defineService } from '@civildiy/common/runtime';
import { httpSettings } from '@civildiy/common/service';
import { buildApp } from './app.ts';
import { postsServiceEnv } from './config.ts';
import * as schema from './db/schema.ts';
import { handleExpiryTasks, scheduleExpiry } from './handlers.ts';
import { PgPostsStore } from './pg-posts-store.ts';

/** Posts (the write model): versions, `If-Match`, cursor pages, `post.*` events through the outbox, scheduled expiry. */
export const postsService = defineService({
  name: 'posts-service',
  env: postsServiceEnv,
  database: (config) => ({ schema, migrationsFolder: fileURLToPath(new URL('./db/migrations', import.meta.url)), url: config.POSTS_DATABASE_URL }),
  build: async ({ config, db, logger, tasks, readiness }) => {
    const store = new PgPostsStore({ db });
    return {
      tasks: { queues: [expirePosts.queue], concurrency: 1, handle: (worker) => handleExpiryTasks({ worker, store }) },
      // The schedule lives in Redis and is shared by every instance, so it stays after a shutdown.
      schedules: [() => scheduleExpiry(tasks, config.POSTS_EXPIRY_INTERVAL_MS)],
      http: [{ app: await buildApp({ http: httpSettings(config), store, logger, auth: { jwksUrl: config.AUTH_JWKS_URL }, readiness }), port: config.POSTS_PORT }],
    };
  },
});
