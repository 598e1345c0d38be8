import { z } from 'zod';
import { baseEnv, envInt } from '@civildiy/common';

/** notification-service environment (see .env.example). */
export const notificationServiceEnv = baseEnv.extend({
  NOTIFICATION_PORT: envInt(0, 65535).default(8106).describe('the HTTP port of notification-service'),
  NOTIFICATION_DATABASE_URL: z.string().optional().describe('a postgres:// URL; unset = embedded PGlite in DATA_DIR/notification-service'),
  MESSAGING_URL: z.url().default('http://127.0.0.1:8002').describe('the messaging provider base URL'),
  MESSAGING_TIMEOUT_MS: envInt(100, 120_000).default(5_000).describe('timeout of one messaging call (ms)'),
  NOTIFICATION_CONCURRENCY: envInt(1, 500).default(10).describe('notifications delivered in parallel by this process'),
});
export type NotificationServiceConfig = z.infer<typeof notificationServiceEnv>;
