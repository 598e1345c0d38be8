import { fileURLToPath } from 'node:url';
import { loadConfigOrExit } from '@civildiy/common';
import { startRuntime } from '@civildiy/common/runtime';
import { httpSettings, listen } from '@civildiy/common/service';
import { buildApp } from './app.ts';
import { orderServiceEnv } from './config.ts';
import * as schema from './db/schema.ts';
import { subscribeToOutcomes } from './handlers.ts';

const config = loadConfigOrExit(orderServiceEnv);
const { logger, shutdown, events, database, readiness } = await startRuntime({
  service: 'order-service',
  config,
  database: { schema, migrationsFolder: fileURLToPath(new URL('./db/migrations', import.meta.url)), url: config.ORDER_DATABASE_URL },
});

const subscription = subscribeToOutcomes({ subscriber: events.subscriber, db: database.db, logger });
shutdown.add('order.processed consumer', () => subscription.close());

const app = await buildApp({ http: httpSettings(config), db: database.db, logger, auth: { jwksUrl: config.AUTH_JWKS_URL }, readiness });
await listen(app, { port: config.ORDER_PORT, host: config.HOST, shutdown });
