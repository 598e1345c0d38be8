import { defineConfig } from 'drizzle-kit';

/** `npx drizzle-kit generate --config posts-service/drizzle.config.ts` writes a new migration. */
export default defineConfig({
  dialect: 'postgresql',
  schema: './posts-service/src/db/schema.ts',
  out: './posts-service/src/db/migrations',
});
