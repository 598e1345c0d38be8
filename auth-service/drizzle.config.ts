import { defineConfig } from 'drizzle-kit';

// `npm run db:generate -w auth-service` after changing src/db/schema.ts.
// openDatabase applies the migrations at start, recording them in drizzle.__migrations_auth_service.
export default defineConfig({
  dialect: 'postgresql',
  schema: './src/db/schema.ts',
  out: './src/db/migrations',
  migrations: { schema: 'drizzle', table: '__migrations_auth_service' },
});
