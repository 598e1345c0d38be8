import { defineConfig } from 'drizzle-kit';

/** `npx drizzle-kit generate --config order-service/drizzle.config.ts` writes a new migration. */
export default defineConfig({
  dialect: 'postgresql',
  schema: './order-service/src/db/schema.ts',
  out: './order-service/src/db/migrations',
});
