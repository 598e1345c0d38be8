import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { envInt, loadConfig } from '@civildiy/common';
import { LocalPostgres, openDatabase } from '@civildiy/common/db';
import { z } from 'zod';
import { authEnv } from './config.ts';
import type { AuthDatabase } from './db/database.ts';
import * as schema from './db/schema.ts';

/**
 * What a command needs to find auth-service's database where `npm start` keeps it: the service's own
 * variables, and the launcher's two that decide where the databases run (documented in
 * `.env.example` under the launcher's section; the same defaults).
 */
export const commandDatabaseEnv = authEnv.pick({ AUTH_DATABASE_URL: true, AUTH_PORT: true, DATA_DIR: true }).extend({
  LOCAL_DATABASE: z.enum(['postgres', 'pglite']).default('postgres').describe('as npm start reads it'),
  LOCAL_POSTGRES_PORT: envInt(1, 65535).default(5433).describe('as npm start reads it'),
});

/** A command could not open the database: the message says why and what to do. */
export class CommandDatabaseError extends Error {
  override readonly name = 'CommandDatabaseError';
}

/** auth-service's database opened for a command, and where it is (for messages). */
export interface CommandDatabase {
  db: AuthDatabase;
  where: string;
  close(): Promise<void>;
}

const migrationsFolder = fileURLToPath(new URL('./db/migrations', import.meta.url));

/** The repository's root (the nearest folder above holding `package-lock.json`), as the launcher finds it; else the working folder (an image). */
function repositoryRoot(): string {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  for (;;) {
    if (existsSync(path.join(dir, 'package-lock.json'))) return dir;
    const parent = path.dirname(dir);
    if (parent === dir) return process.cwd();
    dir = parent;
  }
}

/**
 * Opens auth-service's database the way `npm start` gives it to the service (scripts/launcher/
 * local-databases.ts), reading the root `.env` as the launcher does, with the same precedence:
 * 1. `AUTH_DATABASE_URL` when set: that server (also what the service alone and an image use);
 * 2. `LOCAL_DATABASE=pglite`: embedded PGlite in `DATA_DIR/auth-service`, which one process can open
 *    at a time, so only while auth-service is stopped;
 * 3. otherwise the database `auth` on the local Postgres server (`DATA_DIR/postgres`, port
 *    `LOCAL_POSTGRES_PORT`): the running one while `npm start` runs, else started for the command.
 * Pending migrations are applied, as the service would at its next start.
 * @throws CommandDatabaseError with what to do.
 */
export async function openCommandDatabase(env: NodeJS.ProcessEnv = process.env): Promise<CommandDatabase> {
  const root = repositoryRoot();
  const envFile = path.join(root, '.env');
  if (existsSync(envFile)) process.loadEnvFile(envFile);
  const config = loadConfig(commandDatabaseEnv, env);
  const dataDir = path.resolve(root, config.DATA_DIR);
  const open = (url?: string) => openDatabase({ service: 'auth-service', dataDir, migrationsFolder, schema, ...(url ? { url } : {}) });

  if (config.AUTH_DATABASE_URL) {
    const database = await open(config.AUTH_DATABASE_URL);
    return { db: database.db, where: `the server of AUTH_DATABASE_URL (${redacted(config.AUTH_DATABASE_URL)})`, close: () => database.close() };
  }
  if (config.LOCAL_DATABASE === 'pglite') {
    if (await answers(`http://127.0.0.1:${config.AUTH_PORT}/health/live`)) {
      throw new CommandDatabaseError(
        `auth-service is running (port ${config.AUTH_PORT}) on embedded PGlite, which only one process can open: stop it (Ctrl-C npm start), run this again, then start it.`,
      );
    }
    const database = await open();
    return { db: database.db, where: `embedded PGlite in ${path.join(dataDir, 'auth-service')}`, close: () => database.close() };
  }
  let local: Awaited<ReturnType<typeof LocalPostgres.existingDatabase>>;
  try {
    local = await LocalPostgres.existingDatabase({ dataDir, port: config.LOCAL_POSTGRES_PORT, name: 'auth' });
  } catch (error) {
    throw new CommandDatabaseError(`auth-service's database could not be opened: ${error instanceof Error ? error.message : String(error)}`, { cause: error });
  }
  try {
    const database = await open(local.url);
    return {
      db: database.db,
      where: `database "auth" on the local Postgres server (127.0.0.1:${config.LOCAL_POSTGRES_PORT}${local.startedHere ? ', started for this command' : ''})`,
      close: async () => {
        await database.close();
        await local.release();
      },
    };
  } catch (error) {
    await local.release();
    throw error;
  }
}

/** Whether something answers `url` within a second. */
async function answers(url: string): Promise<boolean> {
  try {
    await fetch(url, { signal: AbortSignal.timeout(1_000) });
    return true;
  } catch {
    return false;
  }
}

function redacted(url: string): string {
  try {
    const parsed = new URL(url);
    if (parsed.password) parsed.password = '***';
    return parsed.toString();
  } catch {
    return 'unparsable URL';
  }
}
