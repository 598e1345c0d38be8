import { defineConfig } from 'drizzle-kit';

/**
 * `npx drizzle-kit generate --config search-service/drizzle.config.ts` (from the repository root)
 * writes a new migration. The `vector` column needs pgvector: `openDatabase` creates the extension
 * before the migrations run. Its HNSW indexes (one per dimension) are not in the schema: see
 * src/hnsw-index.ts.
 */
export default defineConfig({
  dialect: 'postgresql',
  schema: './search-service/src/db/schema.ts',
  out: './search-service/src/db/migrations',
});
