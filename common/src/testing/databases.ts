import pg from 'pg';
import { openDatabase, type OpenDatabase, type OpenDatabaseOptions } from '../db/open-database.ts';
import { newId } from '../ids/index.ts';

/** A database created for one test file or test. */
export interface TestDatabase {
  /** Connection string of the new database (pass it as `url` to `openDatabase`). */
  url: string;
  /** The database's name (`test_<uuid without dashes>`). */
  name: string;
  /** Drops the database, ending any connection still open to it. Safe to call twice. */
  drop(): Promise<void>;
}

/**
 * Creates a uniquely named, empty database on the local Postgres server for a test, so tests never
 * share tables. The server is `POSTGRES_TEST_URL` (default `postgres://postgres@127.0.0.1:5432/postgres`);
 * the new database's URL is the same with the database name replaced.
 *
 * ```ts
 * const testDb = await createTestDatabase();
 * afterAll(() => testDb.drop());
 * const { db } = await openDatabase({ service: 'orders', url: testDb.url, dataDir: 'memory://', migrationsFolder });
 * ```
 */
export async function createTestDatabase(serverUrl = process.env.POSTGRES_TEST_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres'): Promise<TestDatabase> {
  const name = `test_${newId().replaceAll('-', '')}`;
  const admin = new pg.Client({ connectionString: serverUrl });
  await admin.connect();
  try {
    await admin.query(`CREATE DATABASE "${name}"`);
  } finally {
    await admin.end();
  }
  const url = new URL(serverUrl);
  url.pathname = `/${name}`;
  let dropped: Promise<void> | undefined;
  return {
    url: url.toString(),
    name,
    drop: () =>
      (dropped ??= (async () => {
        const client = new pg.Client({ connectionString: serverUrl });
        await client.connect();
        try {
          await client.query(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`);
        } finally {
          await client.end();
        }
      })()),
  };
}

/** Where a service's tests run their database: embedded PGlite or the local Postgres server. */
export type DatabaseTarget = 'PGlite' | 'Postgres server';

/** Both targets, for `describe.each(DATABASE_TARGETS)`: the same tests on PGlite and on a server. */
export const DATABASE_TARGETS: readonly DatabaseTarget[] = ['PGlite', 'Postgres server'];

/**
 * Opens a service's database for a test file on `target`: in-memory PGlite, or a fresh database on
 * the local Postgres server ({@link createTestDatabase}), migrated. Its `close()` also drops the
 * server database.
 */
export async function openTestDatabase<TSchema extends Record<string, unknown>>(
  target: DatabaseTarget,
  options: Omit<OpenDatabaseOptions<TSchema>, 'url' | 'dataDir'>,
): Promise<OpenDatabase<TSchema>> {
  const server = target === 'Postgres server' ? await createTestDatabase() : undefined;
  try {
    const database = await openDatabase({ ...options, dataDir: 'memory://', ...(server ? { url: server.url } : {}) });
    return {
      ...database,
      close: async () => {
        await database.close();
        await server?.drop();
      },
    };
  } catch (error) {
    await server?.drop();
    throw error;
  }
}
