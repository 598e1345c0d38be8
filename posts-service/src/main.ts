import { fileURLToPath } from 'node:url';
import { loadConfigOrExit } from '@civildiy/common';
import { expirePosts } from '@civildiy/common/contracts';
import { startRuntime } from '@civildiy/common/runtime';
import { httpSettings, listen } from '@civildiy/common/service';
import { TaskWorker } from '@civildiy/common/tasks';
import { buildApp } from './app.ts';
import { postsServiceEnv } from './config.ts';
import * as schema from './db/schema.ts';
import { handleExpiryTasks, scheduleExpiry } from './handlers.ts';
import { PgPostsStore } from './pg-posts-store.ts';

const config = loadConfigOrExit(postsServiceEnv);
const { logger, shutdown, database, readiness, tasks } = await startRuntime({
  service: 'posts-service',
  config,
  database: { schema, migrationsFolder: fileURLToPath(new URL('./db/migrations', import.meta.url)), url: config.POSTS_DATABASE_URL },
});

const store = new PgPostsStore({ db: database.db });

// Stops before the relay and the database (shutdown runs in reverse), so a running expiry finishes its batch first.
const worker = new TaskWorker({ connection: config.REDIS_BROKER_URL, prefix: config.REDIS_KEY_PREFIX, queues: [expirePosts.queue], concurrency: 1, logger });
handleExpiryTasks({ worker, store });
await worker.start();
shutdown.add('posts-maintenance worker', () => worker.close({ timeoutMs: config.SHUTDOWN_TIMEOUT_MS / 2 }));
// The schedule lives in Redis and is shared by every instance, so it is not removed at shutdown.
await scheduleExpiry(tasks, config.POSTS_EXPIRY_INTERVAL_MS);

const app = await buildApp({ http: httpSettings(config), store, logger, auth: { jwksUrl: config.AUTH_JWKS_URL }, readiness });
await listen(app, { port: config.POSTS_PORT, host: config.HOST, shutdown });
