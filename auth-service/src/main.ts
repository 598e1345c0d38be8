import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createLogger, loadConfigOrExit } from '@civildiy/common';
import { openDatabase } from '@civildiy/common/db';
import { RedisStreamsEventBus } from '@civildiy/common/events';
import { createRedis, pingRedis } from '@civildiy/common/redis';
import { listen, Shutdown } from '@civildiy/common/service';
import { buildApp } from './app.ts';
import { authEnv } from './config.ts';
import * as schema from './db/schema.ts';
import { createEventRelay } from './handlers.ts';
import { SigningKeys } from './signing-keys.ts';

const config = loadConfigOrExit(authEnv);
const logger = createLogger({ service: 'auth-service', level: config.LOG_LEVEL });
const shutdown = new Shutdown(logger, config.SHUTDOWN_TIMEOUT_MS);

try {
  await pingRedis(config.REDIS_BROKER_URL);
} catch (error) {
  logger.fatal({ err: error }, `Redis is not reachable at ${config.REDIS_BROKER_URL}: start one (e.g. \`docker run -p 6379:6379 redis:7\`) or set REDIS_BROKER_URL`);
  process.exit(1);
}

const database = await openDatabase({
  service: 'auth-service',
  url: config.AUTH_DATABASE_URL,
  dataDir: config.DATA_DIR,
  migrationsFolder: fileURLToPath(new URL('./db/migrations', import.meta.url)),
  schema,
  logger,
});
shutdown.add('database', () => database.close());

// A login must not hang while Redis is away: fail the counter call (503) instead of queueing it.
const redis = createRedis(config.REDIS_BROKER_URL, { name: 'auth-service', logger, options: { maxRetriesPerRequest: 1 } });
shutdown.add('redis', () => redis.quit());

const bus = new RedisStreamsEventBus({ connection: config.REDIS_BROKER_URL, prefix: `${config.REDIS_KEY_PREFIX}:`, logger });
shutdown.add('event bus', () => bus.close());
const relay = createEventRelay({ db: database.db, publisher: bus, logger });
relay.start();
shutdown.add('outbox relay', () => relay.stop());

const keys = await SigningKeys.open({
  dir: config.AUTH_SIGNING_KEYS_DIR ?? join(config.DATA_DIR, 'auth', 'keys'),
  accessTokenTtlSeconds: config.ACCESS_TOKEN_TTL_SECONDS,
  rotationDays: config.SIGNING_KEY_ROTATION_DAYS,
  logger,
});

const app = await buildApp({
  config,
  logger,
  db: database.db,
  redis,
  keys,
  readiness: { database: () => database.ping(), redis: () => redis.ping() },
  onOutboxWritten: () => relay.wake(),
});
await listen(app, { port: config.AUTH_PORT, host: config.HOST, shutdown });
shutdown.installSignalHandlers();
