import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadConfigOrExit } from '@civildiy/common';
import { startRuntime } from '@civildiy/common/runtime';
import { listen } from '@civildiy/common/service';
import { buildApp } from './app.ts';
import { authEnv } from './config.ts';
import * as schema from './db/schema.ts';
import { SigningKeys } from './signing-keys.ts';

const config = loadConfigOrExit(authEnv);
const { logger, shutdown, redis, database, readiness } = await startRuntime({
  service: 'auth-service',
  config,
  database: { schema, migrationsFolder: fileURLToPath(new URL('./db/migrations', import.meta.url)), url: config.AUTH_DATABASE_URL },
});

const keys = await SigningKeys.open({
  dir: config.AUTH_SIGNING_KEYS_DIR ?? join(config.DATA_DIR, 'auth', 'keys'),
  accessTokenTtlSeconds: config.ACCESS_TOKEN_TTL_SECONDS,
  rotationDays: config.SIGNING_KEY_ROTATION_DAYS,
  logger,
});

const app = await buildApp({ config, logger, db: database.db, redis, keys, readiness });
await listen(app, { port: config.AUTH_PORT, host: config.HOST, shutdown });
