/**
 * `npm run data:migrate`: moves the services' data from embedded PGlite folders (`DATA_DIR/<service>`,
 * the layout before the local Postgres server) into their databases on the local server that
 * `npm start` runs, then renames each folder to `<service>.migrated` (kept, not deleted: remove it
 * once you are content). Run it with the system stopped.
 *
 * Per service: both databases are brought to the service's latest migration, every table's rows are
 * copied in one transaction (foreign keys and triggers held off while it runs, so the order of tables
 * does not matter), and the sequences follow. A server database that already held data before this
 * run is left alone: the service is reported and skipped, so nothing is ever overwritten.
 *
 * Exit code 0 when every folder found was migrated (or none was found), 1 otherwise.
 */
import { existsSync } from 'node:fs';
import { rename } from 'node:fs/promises';
import path from 'node:path';
import { sql } from 'drizzle-orm';
import pg from 'pg';
import { createLogger } from '@civildiy/common';
import { LocalPostgres, openDatabase, type OpenDatabase } from '@civildiy/common/db';
import { SERVICES } from '@civildiy/common/topology';
import { dataInEarlierLayout, planDatabases } from './launcher/local-databases.ts';
import { repositoryRoot } from './launcher/repository-root.ts';

if (existsSync(path.join(repositoryRoot, '.env'))) process.loadEnvFile(path.join(repositoryRoot, '.env'));
const dataDir = path.resolve(repositoryRoot, process.env.DATA_DIR ?? '.data');
const plan = planDatabases(SERVICES, { ...process.env, LOCAL_DATABASE: 'postgres' });
const found = dataInEarlierLayout(plan, dataDir);
if (found.length === 0) {
  console.log(`Nothing to migrate: no PGlite folder in ${dataDir} of a service that npm start puts on the local Postgres server.`);
  process.exit(0);
}

const logger = createLogger({ service: 'data-migrate', level: 'warn' });
const server = await LocalPostgres.start({ dataDir, port: plan.port });
let failures = 0;
try {
  for (const { service, folder } of found) {
    const database = plan.localPostgres.find((planned) => planned.service === service)!.database;
    try {
      const copied = await migrateService(service, database.name);
      if (copied === undefined) {
        failures++;
        console.error(`${service}: its database "${database.name}" on the local server already holds data; left both as they are (${folder} is not renamed).`);
        continue;
      }
      await rename(folder, `${folder}.migrated`);
      console.log(`${service}: ${copied.rows} rows in ${copied.tables} tables copied into "${database.name}"; the PGlite folder is now ${folder}.migrated`);
    } catch (error) {
      failures++;
      console.error(`${service}: not migrated (${error instanceof Error ? error.message : String(error)}); ${folder} is left as it was.`);
    }
  }
} finally {
  await server.stop();
}
process.exit(failures > 0 ? 1 : 0);

/**
 * Copies one service's PGlite database into its server database. Resolves with what was copied, or
 * undefined when the server database was not new (its migrations had run before this call).
 */
async function migrateService(service: string, databaseName: string): Promise<{ tables: number; rows: number } | undefined> {
  const migrationsFolder = path.join(repositoryRoot, service, 'src', 'db', 'migrations');
  const url = await server.database(databaseName);
  const target = await openDatabase({ service, url, dataDir, migrationsFolder, logger });
  const fresh = target.migrations.applied === target.migrations.total;
  await target.close();
  if (!fresh) return undefined;
  const source = await openDatabase({ service, dataDir, migrationsFolder, logger });
  // The superuser, in the service's database: it may hold off foreign keys and triggers.
  const adminUrl = new URL(server.adminUrl);
  adminUrl.pathname = `/${databaseName}`;
  const admin = new pg.Client({ connectionString: adminUrl.toString() });
  await admin.connect();
  try {
    return await copyTables(source, admin);
  } finally {
    await admin.end();
    await source.close();
  }
}

/** Replaces every table's rows on the server by the source's, in one transaction. */
async function copyTables(source: OpenDatabase<Record<string, never>>, admin: pg.Client): Promise<{ tables: number; rows: number }> {
  const tables = await source.db.execute<{ schema: string; name: string }>(
    sql.raw("select table_schema as schema, table_name as name from information_schema.tables where table_type = 'BASE TABLE' and table_schema not in ('pg_catalog', 'information_schema', 'drizzle') order by 1, 2"),
  );
  let rows = 0;
  await admin.query('begin');
  try {
    await admin.query('set local session_replication_role = replica');
    // Rows a migration seeded (a catalog) are in the source too: the source's copy wins. All tables
    // in one statement, as foreign keys between them allow.
    const all = tables.rows.map(({ schema, name }) => `${quote(schema)}.${quote(name)}`);
    if (all.length > 0) await admin.query(`truncate ${all.join(', ')}`);
    for (const { schema, name } of tables.rows) {
      const table = `${quote(schema)}.${quote(name)}`;
      const batch = await source.db.execute<{ rows: unknown[] | null }>(sql.raw(`select json_agg(t) as rows from ${table} t`));
      const values = batch.rows[0]?.rows ?? [];
      for (let start = 0; start < values.length; start += 1_000) {
        const slice = values.slice(start, start + 1_000);
        await admin.query(`insert into ${table} select * from json_populate_recordset(null::${table}, $1::json)`, [JSON.stringify(slice)]);
      }
      rows += values.length;
    }
    // Every sequence owned by a column continues after the highest value copied.
    const sequences = await admin.query<{ sequence: string; table: string; column: string }>(
      `select s.oid::regclass::text as sequence, c.oid::regclass::text as table, a.attname as column
         from pg_class s join pg_depend d on d.objid = s.oid and d.deptype in ('a', 'i')
         join pg_class c on c.oid = d.refobjid join pg_attribute a on a.attrelid = c.oid and a.attnum = d.refobjsubid
        where s.relkind = 'S'`,
    );
    for (const { sequence, table, column } of sequences.rows) {
      await admin.query(`select setval($1::regclass, coalesce((select max(${quote(column)}) from ${table}), 0) + 1, false)`, [sequence]);
    }
    await admin.query('commit');
  } catch (error) {
    await admin.query('rollback').catch(() => undefined);
    throw error;
  }
  return { tables: tables.rows.length, rows };
}

function quote(identifier: string): string {
  return `"${identifier.replaceAll('"', '""')}"`;
}
