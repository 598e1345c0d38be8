import { defineConfig } from 'drizzle-kit';

/** `npx drizzle-kit generate --config profile-service/drizzle.config.ts` writes a new migration. */
export default defineConfig({
  dialect: 'postgresql',
  schema: './profile-service/src/db/schema.ts',
  out: './profile-service/src/db/migrations',
});
