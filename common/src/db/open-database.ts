import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import type { PGlite } from '@electric-sql/pglite';
import { drizzle as drizzlePglite } from 'drizzle-orm/pglite';
import { drizzle as drizzleNodePg } from 'drizzle-orm/node-postgres';
import pg from 'pg';
import { assertBeforeDeadline } from '../context/index.ts';
import type { Logger } from '../logging/index.ts';
import type { Database } from './database.ts';
import { PGliteClient, type PGliteDriverClient } from './pglite-client.ts';
import { PGliteThread } from './pglite-thread.ts';
import { migratePgliteDatabase, migrateServerDatabase, type MigrationRun } from './migrations.ts';

/** Options of {@link openDatabase}. */
export interface OpenDatabaseOptions<TSchema extends Record<string, unknown>> {
  /**
   * The service's name, e.g. `orders`. Names the embedded data folder (`<dataDir>/<service>`), the
   * migrations table (`drizzle.__migrations_<service>`) and the migration advisory lock.
   */
  service: string;
  /**
   * A Postgres connection string (`<NAME>_DATABASE_URL`). Set: a node-postgres pool on that server.
   * Unset (default): embedded PGlite in `<dataDir>/<service>`.
   */
  url?: string;
  /**
   * Where embedded databases live (`DATA_DIR`); the service's folder is created inside it.
   * `memory://` keeps the database in memory (tests). Ignored when `url` is set.
   */
  dataDir: string;
  /** The service's drizzle-kit output folder (with `meta/_journal.json`), applied at open. */
  migrationsFolder: string;
  /** The service's Drizzle schema (`import * as schema from './db/schema.ts'`), for `db.query.*`. Default: none. */
  schema?: TSchema;
  /** Logs which database was opened and how many migrations were applied. Default: silent. */
  logger?: Logger;
  /**
   * Postgres extensions the service needs. `vector`: loads pgvector into PGlite and runs
   * `CREATE EXTENSION IF NOT EXISTS vector` before the migrations (on a server too, which then
   * must have pgvector installed). Default: none.
   */
  extensions?: { vector?: boolean };
  /**
   * Embedded only: run PGlite on its own worker thread ({@link PGliteThread}), so query work does
   * not block the event loop. Worth it where queries are heavy (search's HNSW walks); a hop costs
   * a few tens of microseconds. Default false.
   */
  thread?: boolean;
  /** With `thread`: called if the database thread dies (the owner should stop the process). */
  onThreadExit?: (error: Error) => void;
  /** Maximum connections of the server pool. Default 10. Ignored for PGlite. */
  poolSize?: number;
  /** How long the server pool waits for a new connection before the query fails, in ms. Default 5,000. Ignored for PGlite. */
  connectTimeoutMs?: number;
}

/** An open service database. */
export interface OpenDatabase<TSchema extends Record<string, unknown>> {
  /** The Drizzle database; the same type and behaviour on both drivers. */
  db: Database<TSchema>;
  /** `pglite` (embedded) or `postgres` (a server through node-postgres). */
  kind: 'pglite' | 'postgres';
  /** What the migration step at open did. */
  migrations: MigrationRun;
  /** Runs `select 1`; rejects when the database is unreachable (readiness checks). */
  ping(): Promise<void>;
  /** Closes the pool or the embedded database. Safe to call twice. */
  close(): Promise<void>;
}

/**
 * Opens a service's database and applies its pending migrations.
 *
 * Without `url` it runs embedded PGlite in `<dataDir>/<service>` (the folder is created); with
 * `url` it uses a node-postgres pool. Migrations are the drizzle-kit SQL files of
 * `migrationsFolder`, recorded in `drizzle.__migrations_<service>`; on a server they run under a
 * Postgres advisory lock so processes starting together do not race.
 */
export async function openDatabase<TSchema extends Record<string, unknown> = Record<string, never>>(
  options: OpenDatabaseOptions<TSchema>,
): Promise<OpenDatabase<TSchema>> {
  const { service, logger } = options;
  if (!/^[a-z0-9][a-z0-9_-]*$/i.test(service)) throw new TypeError(`Service name "${service}" must be letters, digits, - or _`);
  const drizzleConfig = options.schema ? { schema: options.schema } : {};
  const extensionNames = options.extensions?.vector ? ['vector'] : [];

  if (options.url) {
    const pool = new pg.Pool({
      connectionString: options.url,
      max: options.poolSize ?? 10,
      // Seen in pg_stat_activity; and a server that does not answer fails the query instead of hanging it.
      application_name: service,
      connectionTimeoutMillis: options.connectTimeoutMs ?? 5_000,
    });
    // An idle client losing its connection emits here; without a listener the process would crash.
    pool.on('error', (error) => logger?.warn({ err: error, database: service }, 'idle database connection lost'));
    // A client in use emits too when the server goes away (restart, failover): pg-pool listens only
    // while it is idle, so every client gets a listener of its own. The query in flight rejects
    // (answered as 503 database.unavailable) and the pool drops the client when it is released.
    pool.on('connect', (client) => {
      client.on('error', (error) => logger?.warn({ err: error, database: service }, 'database connection lost'));
    });
    try {
      const migrations = await migrateServerDatabase(pool, service, options.migrationsFolder, extensionNames);
      logger?.info({ database: service, kind: 'postgres', ...migrations }, 'database ready');
      const db = withDeadlineChecks(drizzleNodePg({ client: pool, ...drizzleConfig }) as unknown as Database<TSchema>);
      let closed: Promise<void> | undefined;
      return {
        db,
        kind: 'postgres',
        migrations,
        ping: async () => {
          await pool.query('select 1');
        },
        close: () => (closed ??= pool.end()),
      };
    } catch (error) {
      await pool.end().catch(() => undefined);
      throw error;
    }
  }

  const memory = options.dataDir.startsWith('memory://');
  const dataDir = memory ? `memory://${service}` : join(options.dataDir, service);
  if (!memory) {
    await mkdir(dataDir, { recursive: true });
    if (!existsSync(join(dataDir, 'PG_VERSION'))) await initdbApart(dataDir);
  }
  const openClient = async (): Promise<PGliteDriverClient> =>
    options.thread
      ? await PGliteThread.create(dataDir, { extensions: extensionNames, ...(options.onThreadExit ? { onExit: options.onThreadExit } : {}) })
      : await PGliteClient.create(dataDir, { extensions: extensionNames });
  let client = await openClient();
  try {
    // Drizzle's PGlite driver only calls `query` and `transaction`, which both clients offer.
    let pgliteDb = drizzlePglite({ client: client as unknown as PGlite, ...drizzleConfig });
    const migrations = await migratePgliteDatabase(pgliteDb, service, options.migrationsFolder, extensionNames);
    // PGlite's WASM memory grows with the work it does and never shrinks: creating a new folder
    // (initdb) leaves an instance at ~630 MB, applying migrations (indexes) at ~400 MB, against
    // ~280 MB for the same database opened afresh. After such one-time work the instance is closed
    // and opened again (~0.3 s, only then).
    if (!memory && migrations.applied > 0) {
      await client.close();
      client = await openClient();
      pgliteDb = drizzlePglite({ client: client as unknown as PGlite, ...drizzleConfig });
    }
    logger?.info({ database: service, kind: 'pglite', dataDir, ...migrations }, 'database ready');
    let closed: Promise<void> | undefined;
    return {
      db: withDeadlineChecks(pgliteDb as unknown as Database<TSchema>),
      kind: 'pglite',
      migrations,
      ping: async () => {
        await client.query('select 1');
      },
      close: () => (closed ??= client.close()),
    };
  } catch (error) {
    await client.close().catch(() => undefined);
    throw error;
  }
}

const INITDB_SCRIPT = fileURLToPath(new URL('./pglite-initdb.mjs', import.meta.url));

/**
 * Creates a new PGlite folder in a child process that then exits (`pglite-initdb.mjs`): initdb's
 * work leaves a process ~20–50 MB larger for good even after its instance is closed (measured on
 * search-service's first start), so the service's own process only ever opens an existing folder.
 */
async function initdbApart(dataDir: string): Promise<void> {
  try {
    await promisify(execFile)(process.execPath, [INITDB_SCRIPT, dataDir], { timeout: 120_000, env: { ...process.env, NODE_OPTIONS: '' } });
  } catch (error) {
    const stderr = (error as { stderr?: string }).stderr?.trim();
    throw new Error(`Creating the embedded database in ${dataDir} failed${stderr ? `: ${stderr}` : ''}`, { cause: error });
  }
}

/**
 * Makes `db.transaction` respect the current request's deadline (see `assertBeforeDeadline`): a
 * transaction neither starts nor commits once the caller has given up, so a client that was answered
 * 504 (or gave up) never finds its write done after all. Outside a request (jobs, consumers, the
 * relay) there is no deadline and nothing changes. Nested transactions (savepoints) are not checked.
 */
function withDeadlineChecks<TSchema extends Record<string, unknown>>(db: Database<TSchema>): Database<TSchema> {
  const transaction = db.transaction.bind(db);
  db.transaction = (work, config) =>
    transaction(async (tx) => {
      // Checked once the transaction has begun: on PGlite it may have waited its turn.
      assertBeforeDeadline('the transaction');
      const result = await work(tx);
      assertBeforeDeadline('the transaction');
      return result;
    }, config);
  return db;
}
