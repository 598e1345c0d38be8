import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { createLogger, loadConfigOrExit } from '@civildiy/common';
import { sendNotification } from '@civildiy/common/contracts';
import { openDatabase } from '@civildiy/common/db';
import { RedisStreamsEventBus } from '@civildiy/common/events';
import { OutboxRelay } from '@civildiy/common/outbox';
import { MessagingClient } from '@civildiy/common/providers';
import { createRedis } from '@civildiy/common/redis';
import { Shutdown, listen } from '@civildiy/common/service';
import { TaskClient, TaskWorker } from '@civildiy/common/tasks';
import { buildApp } from './app.ts';
import { notificationServiceEnv } from './config.ts';
import * as schema from './db/schema.ts';
import { handleNotificationTasks, subscribeToRegistrations } from './handlers.ts';

const config = loadConfigOrExit(notificationServiceEnv);
const logger = createLogger({ service: 'notification-service', level: config.LOG_LEVEL });
const shutdown = new Shutdown(logger, config.SHUTDOWN_TIMEOUT_MS);
shutdown.installSignalHandlers();

const database = await openDatabase({
  service: 'notification-service',
  dataDir: config.DATA_DIR,
  migrationsFolder: path.join(path.dirname(fileURLToPath(import.meta.url)), 'db/migrations'),
  schema,
  logger,
  ...(config.NOTIFICATION_DATABASE_URL ? { url: config.NOTIFICATION_DATABASE_URL } : {}),
});
shutdown.add('database', () => database.close());

const redis = createRedis(config.REDIS_BROKER_URL, { name: 'notification-service', logger });
shutdown.add('redis', () => redis.quit());
const tasks = new TaskClient({
  connection: redis,
  prefix: config.REDIS_KEY_PREFIX,
  logger,
  ...(config.REDIS_RESULT_BACKEND ? { resultsConnection: config.REDIS_RESULT_BACKEND } : {}),
});
shutdown.add('task client', () => tasks.close());
const bus = new RedisStreamsEventBus({ connection: redis, prefix: `${config.REDIS_KEY_PREFIX}:`, logger });
shutdown.add('event bus', () => bus.close());

const relay = new OutboxRelay({ db: database.db, publisher: bus, tasks, logger });
relay.start();
shutdown.add('outbox relay', () => relay.stop());

const subscription = subscribeToRegistrations({ bus, db: database.db, onChange: () => relay.wake() });
shutdown.add('user.registered consumer', () => subscription.close());

const worker = new TaskWorker({ connection: config.REDIS_BROKER_URL, prefix: config.REDIS_KEY_PREFIX, queues: [sendNotification.queue], concurrency: config.NOTIFICATION_CONCURRENCY, logger });
handleNotificationTasks({ worker, db: database.db, sender: new MessagingClient({ baseUrl: config.MESSAGING_URL, timeoutMs: config.MESSAGING_TIMEOUT_MS, logger }), logger });
await worker.start();
shutdown.add('notifications worker', () => worker.close({ timeoutMs: config.SHUTDOWN_TIMEOUT_MS / 2 }));

const app = await buildApp({
  db: database.db,
  logger,
  auth: { jwksUrl: config.AUTH_JWKS_URL },
  readiness: { database: () => database.ping(), redis: () => redis.ping() },
});
await listen(app, { port: config.NOTIFICATION_PORT, host: config.HOST, shutdown });
