import { createHash } from 'node:crypto';
import { sql } from 'drizzle-orm';
import type { MigrationConfig } from 'drizzle-orm/migrator';
import { migrate as migratePglite } from 'drizzle-orm/pglite/migrator';
import { migrate as migrateNodePg } from 'drizzle-orm/node-postgres/migrator';
import type { PgliteDatabase } from 'drizzle-orm/pglite';
import { drizzle as drizzleNodePg } from 'drizzle-orm/node-postgres';
import type { Pool } from 'pg';

/** The Postgres schema that holds every service's migrations table. */
export const MIGRATIONS_SCHEMA = 'drizzle';

/**
 * The name of a service's migrations table: `__migrations_<service>` with every character other
 * than a letter or digit replaced by `_` (`order-service` → `__migrations_order_service`). It lives
 * in the `drizzle` schema ({@link MIGRATIONS_SCHEMA}), so several services could even share a
 * database without mixing their migration histories.
 */
export function migrationsTableFor(service: string): string {
  return `__migrations_${service.toLowerCase().replace(/[^a-z0-9]+/g, '_')}`;
}

/** The advisory lock key that serialises migrations of one service on a server (64-bit, from its name). */
export function migrationLockKey(service: string): bigint {
  return createHash('sha256').update(`civildiy:migrations:${service}`).digest().readBigInt64BE(0);
}

function config(service: string, migrationsFolder: string): MigrationConfig {
  return { migrationsFolder, migrationsTable: migrationsTableFor(service), migrationsSchema: MIGRATIONS_SCHEMA };
}

/** Number of migrations already recorded for `service` (0 before the table exists). */
async function appliedCount(
  run: (query: ReturnType<typeof sql>) => Promise<{ rows: Record<string, unknown>[] }>,
  service: string,
): Promise<number> {
  const table = `${MIGRATIONS_SCHEMA}.${migrationsTableFor(service)}`;
  const exists = await run(sql`select to_regclass(${table}) is not null as "exists"`);
  if (!exists.rows[0]?.exists) return 0;
  const count = await run(sql`select count(*)::int as "count" from ${sql.identifier(MIGRATIONS_SCHEMA)}.${sql.identifier(migrationsTableFor(service))}`);
  return Number(count.rows[0]?.count ?? 0);
}

/** SQL run before the migrations (inside the lock on a server): the extensions the service asked for. */
function extensionStatements(extensions: readonly string[]): ReturnType<typeof sql>[] {
  return extensions.map((name) => sql`CREATE EXTENSION IF NOT EXISTS ${sql.identifier(name)}`);
}

/** What a migration run did. */
export interface MigrationRun {
  /** Migrations applied by this run (0 when the database was up to date). */
  applied: number;
  /** Migrations recorded in the service's migrations table after the run. */
  total: number;
}

/**
 * Creates `extensions` (if missing), then applies the pending migrations of `migrationsFolder` to an
 * embedded PGlite database. PGlite is
 * single-process (one owner of its data directory), so no lock is needed.
 */
export async function migratePgliteDatabase(
  db: PgliteDatabase<Record<string, unknown>>,
  service: string,
  migrationsFolder: string,
  extensions: readonly string[] = [],
): Promise<MigrationRun> {
  const run = (query: ReturnType<typeof sql>) => db.execute(query);
  for (const statement of extensionStatements(extensions)) await run(statement);
  const before = await appliedCount(run, service);
  await migratePglite(db, config(service, migrationsFolder));
  const total = await appliedCount(run, service);
  return { applied: total - before, total };
}

/**
 * Creates `extensions` (if missing), then applies the pending migrations of `migrationsFolder` to a
 * Postgres server, on one connection
 * holding a session advisory lock ({@link migrationLockKey}), so two processes of a service starting
 * together apply each migration once: the second waits, then finds nothing to do.
 */
export async function migrateServerDatabase(
  pool: Pool,
  service: string,
  migrationsFolder: string,
  extensions: readonly string[] = [],
): Promise<MigrationRun> {
  const client = await pool.connect();
  let broken: Error | undefined;
  try {
    const key = migrationLockKey(service).toString();
    await client.query('select pg_advisory_lock($1::bigint)', [key]);
    try {
      const db = drizzleNodePg({ client });
      const run = async (query: ReturnType<typeof sql>) => db.execute(query);
      for (const statement of extensionStatements(extensions)) await run(statement);
      const before = await appliedCount(run, service);
      await migrateNodePg(db, config(service, migrationsFolder));
      const total = await appliedCount(run, service);
      return { applied: total - before, total };
    } finally {
      try {
        await client.query('select pg_advisory_unlock($1::bigint)', [key]);
      } catch (error) {
        // Closing the connection releases a session lock too.
        broken = error instanceof Error ? error : new Error(String(error));
      }
    }
  } finally {
    client.release(broken);
  }
}
