import { defineConfig } from 'drizzle-kit';

/**
 * `npx drizzle-kit generate --config search-service/drizzle.config.ts` (from the repository root)
 * writes a new migration. The `vector(256)` column needs pgvector: `openDatabase` creates the
 * extension before the migrations run.
 */
export default defineConfig({
  dialect: 'postgresql',
  schema: './search-service/src/db/schema.ts',
  out: './search-service/src/db/migrations',
});
