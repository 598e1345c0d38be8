import { fileURLToPath } from 'node:url';
import { loadConfigOrExit } from '@civildiy/common';
import { sendNotification } from '@civildiy/common/contracts';
import { MessagingClient } from '@civildiy/common/providers';
import { startRuntime } from '@civildiy/common/runtime';
import { httpSettings, listen } from '@civildiy/common/service';
import { TaskWorker } from '@civildiy/common/tasks';
import { buildApp } from './app.ts';
import { notificationServiceEnv } from './config.ts';
import * as schema from './db/schema.ts';
import { handleNotificationTasks, subscribeToRegistrations } from './handlers.ts';

const config = loadConfigOrExit(notificationServiceEnv);
const { logger, shutdown, events, database, readiness } = await startRuntime({
  service: 'notification-service',
  config,
  database: { schema, migrationsFolder: fileURLToPath(new URL('./db/migrations', import.meta.url)), url: config.NOTIFICATION_DATABASE_URL },
});

const subscription = subscribeToRegistrations({ subscriber: events.subscriber, db: database.db });
shutdown.add('user.registered consumer', () => subscription.close());

const worker = new TaskWorker({
  connection: config.REDIS_BROKER_URL,
  prefix: config.REDIS_KEY_PREFIX,
  queues: [sendNotification.queue],
  concurrency: config.NOTIFICATION_CONCURRENCY,
  logger,
});
const sender = new MessagingClient({ baseUrl: config.MESSAGING_URL, timeoutMs: config.MESSAGING_TIMEOUT_MS, logger });
handleNotificationTasks({ worker, db: database.db, sender, logger });
await worker.start();
shutdown.add('notifications worker', () => worker.close({ timeoutMs: config.SHUTDOWN_TIMEOUT_MS / 2 }));

const app = await buildApp({ http: httpSettings(config), db: database.db, logger, auth: { jwksUrl: config.AUTH_JWKS_URL }, readiness });
await listen(app, { port: config.NOTIFICATION_PORT, host: config.HOST, shutdown });
