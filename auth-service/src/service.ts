import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { defineService } from '@civildiy/common/runtime';
import { buildApp } from './app.ts';
import { authEnv } from './config.ts';
import * as schema from './db/schema.ts';
import { SigningKeys } from './signing-keys.ts';

/** Accounts, passwords, access and refresh tokens, the JWKS and `/auth/verify`. */
export const authService = defineService({
  name: 'auth-service',
  env: authEnv,
  database: (config) => ({ schema, migrationsFolder: fileURLToPath(new URL('./db/migrations', import.meta.url)), url: config.AUTH_DATABASE_URL }),
  build: async ({ config, db, logger, redis, readiness }) => {
    const keys = await SigningKeys.open({
      dir: config.AUTH_SIGNING_KEYS_DIR ?? join(config.DATA_DIR, 'auth', 'keys'),
      accessTokenTtlSeconds: config.ACCESS_TOKEN_TTL_SECONDS,
      rotationDays: config.SIGNING_KEY_ROTATION_DAYS,
      logger,
    });
    return { http: [{ app: await buildApp({ config, logger, db, redis, keys, readiness }), port: config.AUTH_PORT }] };
  },
});
