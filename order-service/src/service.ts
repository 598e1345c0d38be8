import { fileURLToPath } from 'node:url';
import { defineService } from '@civildiy/common/runtime';
import { httpSettings } from '@civildiy/common/service';
import { buildApp } from './app.ts';
import { orderServiceEnv } from './config.ts';
import * as schema from './db/schema.ts';
import { subscribeToOutcomes } from './handlers.ts';

/** Accepts orders (`orders.process` goes out through the outbox) and applies their outcomes. */
export const orderService = defineService({
  name: 'order-service',
  env: orderServiceEnv,
  database: (config) => ({ schema, migrationsFolder: fileURLToPath(new URL('./db/migrations', import.meta.url)), url: config.ORDER_DATABASE_URL }),
  build: async ({ config, db, logger, events, readiness }) => ({
    consumers: { 'order.processed': subscribeToOutcomes({ subscriber: events.subscriber, db, logger }) },
    http: [{ app: await buildApp({ http: httpSettings(config), db, logger, auth: { jwksUrl: config.AUTH_JWKS_URL }, readiness }), port: config.ORDER_PORT }],
  }),
});
