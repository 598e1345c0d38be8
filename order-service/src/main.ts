import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { createLogger, loadConfigOrExit } from '@civildiy/common';
import { openDatabase } from '@civildiy/common/db';
import { RedisStreamsEventBus } from '@civildiy/common/events';
import { OutboxRelay } from '@civildiy/common/outbox';
import { createRedis } from '@civildiy/common/redis';
import { Shutdown, listen } from '@civildiy/common/service';
import { TaskClient } from '@civildiy/common/tasks';
import { buildApp } from './app.ts';
import { orderServiceEnv } from './config.ts';
import * as schema from './db/schema.ts';
import { subscribeToOutcomes } from './handlers.ts';

const config = loadConfigOrExit(orderServiceEnv);
const logger = createLogger({ service: 'order-service', level: config.LOG_LEVEL });
const shutdown = new Shutdown(logger, config.SHUTDOWN_TIMEOUT_MS);
shutdown.installSignalHandlers();

const database = await openDatabase({
  service: 'order-service',
  dataDir: config.DATA_DIR,
  migrationsFolder: path.join(path.dirname(fileURLToPath(import.meta.url)), 'db/migrations'),
  schema,
  logger,
  ...(config.ORDER_DATABASE_URL ? { url: config.ORDER_DATABASE_URL } : {}),
});
shutdown.add('database', () => database.close());

const redis = createRedis(config.REDIS_BROKER_URL, { name: 'order-service', logger });
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

const subscription = subscribeToOutcomes({ bus, db: database.db, logger, onChange: () => relay.wake() });
shutdown.add('order.processed consumer', () => subscription.close());

const app = await buildApp({
  db: database.db,
  logger,
  auth: { jwksUrl: config.AUTH_JWKS_URL },
  readiness: { database: () => database.ping(), redis: () => redis.ping() },
  onOrderPlaced: () => relay.wake(),
});
await listen(app, { port: config.ORDER_PORT, host: config.HOST, shutdown });
