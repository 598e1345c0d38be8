import { fileURLToPath } from 'node:url';
import { defineService } from '@civildiy/common/runtime';
import { httpSettings } from '@civildiy/common/service';
import { buildApp } from './app.ts';
import { profileServiceEnv } from './config.ts';
import * as schema from './db/schema.ts';
import { subscribeToRegistrations } from './handlers.ts';

/** User profiles: created from `user.registered`, edited by their owner, `profile.updated` through the outbox. */
export const profileService = defineService({
  name: 'profile-service',
  env: profileServiceEnv,
  database: (config) => ({ schema, migrationsFolder: fileURLToPath(new URL('./db/migrations', import.meta.url)), url: config.PROFILE_DATABASE_URL }),
  build: async ({ config, db, logger, events, readiness }) => ({
    consumers: { 'user.registered': subscribeToRegistrations({ subscriber: events.subscriber, db }) },
    http: [{ app: await buildApp({ http: httpSettings(config), db, logger, auth: { jwksUrl: config.AUTH_JWKS_URL }, readiness }), port: config.PROFILE_PORT }],
  }),
});
