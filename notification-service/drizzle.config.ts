import { defineConfig } from 'drizzle-kit';

/** `npx drizzle-kit generate --config notification-service/drizzle.config.ts` writes a new migration. */
export default defineConfig({
  dialect: 'postgresql',
  schema: './notification-service/src/db/schema.ts',
  out: './notification-service/src/db/migrations',
});
