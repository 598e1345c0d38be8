import { fileURLToPath } from 'node:url';
import { loadConfigOrExit } from '@civildiy/common';
import { startRuntime } from '@civildiy/common/runtime';
import { httpSettings, listen } from '@civildiy/common/service';
import { buildApp } from './app.ts';
import { profileServiceEnv } from './config.ts';
import * as schema from './db/schema.ts';
import { subscribeToRegistrations } from './handlers.ts';

const config = loadConfigOrExit(profileServiceEnv);
const { logger, shutdown, events, database, readiness } = await startRuntime({
  service: 'profile-service',
  config,
  database: { schema, migrationsFolder: fileURLToPath(new URL('./db/migrations', import.meta.url)), url: config.PROFILE_DATABASE_URL },
});

const subscription = subscribeToRegistrations({ subscriber: events.subscriber, db: database.db });
shutdown.add('user.registered consumer', () => subscription.close());

const app = await buildApp({ http: httpSettings(config), db: database.db, logger, auth: { jwksUrl: config.AUTH_JWKS_URL }, readiness });
await listen(app, { port: config.PROFILE_PORT, host: config.HOST, shutdown });
