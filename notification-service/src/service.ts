import { fileURLToPath } from 'node:url';
import { sendNotification } from '@civildiy/common/contracts';
import { MessagingClient } from '@civildiy/common/providers';
import { defineService } from '@civildiy/common/runtime';
import { httpSettings } from '@civildiy/common/service';
import { buildApp } from './app.ts';
import { notificationServiceEnv } from './config.ts';
import * as schema from './db/schema.ts';
import { handleNotificationTasks, subscribeToRegistrations } from './handlers.ts';

/** Keeps the users' contacts, delivers `notifications.send` through the messaging provider, lists what was sent. */
export const notificationService = defineService({
  name: 'notification-service',
  env: notificationServiceEnv,
  database: (config) => ({ schema, migrationsFolder: fileURLToPath(new URL('./db/migrations', import.meta.url)), url: config.NOTIFICATION_DATABASE_URL }),
  build: async ({ config, db, logger, events, readiness }) => {
    const sender = new MessagingClient({ baseUrl: config.MESSAGING_URL, timeoutMs: config.MESSAGING_TIMEOUT_MS, logger });
    return {
      consumers: { 'user.registered': subscribeToRegistrations({ subscriber: events.subscriber, db }) },
      tasks: { queues: [sendNotification.queue], concurrency: config.NOTIFICATION_CONCURRENCY, handle: (worker) => handleNotificationTasks({ worker, db, sender, logger }) },
      http: [{ app: await buildApp({ http: httpSettings(config), db, logger, auth: { jwksUrl: config.AUTH_JWKS_URL }, readiness }), port: config.NOTIFICATION_PORT }],
    };
  },
});
