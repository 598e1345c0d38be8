/**
 * Where `npm start` runs the services' databases: a service whose `*_DATABASE_URL` is set uses that
 * server; otherwise, with `LOCAL_DATABASE=postgres` (the default), a database of its own on one local
 * Postgres server the launcher starts before the services and stops after them; with
 * `LOCAL_DATABASE=pglite`, or when it needs pgvector (which the server binaries lack), embedded
 * PGlite inside the service, in `DATA_DIR/<service>`.
 */
import { existsSync } from 'node:fs';
import path from 'node:path';
import { loadConfig } from '@civildiy/common';
import type { ServiceDatabase, ServiceInfo } from '@civildiy/common/topology';
import { launcherEnv } from './launcher-env.ts';

/** Where each selected service's database runs. */
export interface DatabasePlan {
  /** On the local Postgres server (empty: no server is started). */
  localPostgres: { service: string; database: ServiceDatabase }[];
  /** Embedded PGlite, in the service's own process. */
  pglite: string[];
  /** The server its `*_DATABASE_URL` names. */
  configured: string[];
  /** The local server's port. */
  port: number;
}

const databaseEnv = launcherEnv.pick({ LOCAL_DATABASE: true, LOCAL_POSTGRES_PORT: true });

/**
 * Decides where each service's database runs.
 * @throws ConfigError naming a bad LOCAL_DATABASE or LOCAL_POSTGRES_PORT.
 */
export function planDatabases(services: readonly ServiceInfo[], env: NodeJS.ProcessEnv): DatabasePlan {
  const config = loadConfig(databaseEnv, env);
  const plan: DatabasePlan = { localPostgres: [], pglite: [], configured: [], port: config.LOCAL_POSTGRES_PORT };
  for (const service of services) {
    const database = service.database;
    if (!database) continue;
    if (env[database.urlVariable]) plan.configured.push(service.name);
    else if (config.LOCAL_DATABASE === 'pglite' || database.vector) plan.pglite.push(service.name);
    else plan.localPostgres.push({ service: service.name, database });
  }
  return plan;
}

/**
 * The services planned on the local server whose data is still in the earlier layout: an embedded
 * PGlite folder `DATA_DIR/<service>` (a Postgres data directory: it has `PG_VERSION`). Starting them
 * on an empty server database would hide that data.
 */
export function dataInEarlierLayout(plan: DatabasePlan, dataDir: string): { service: string; folder: string }[] {
  return plan.localPostgres
    .map(({ service }) => ({ service, folder: path.join(dataDir, service) }))
    .filter(({ folder }) => existsSync(path.join(folder, 'PG_VERSION')));
}

/** The refusal to print for {@link dataInEarlierLayout}'s findings. */
export function earlierLayoutMessage(found: { service: string; folder: string }[]): string {
  return [
    `The data of ${found.map(({ service }) => service).join(', ')} is in embedded PGlite folders (the layout before the local Postgres server):`,
    ...found.map(({ folder }) => `  ${folder}`),
    'npm start now keeps these databases on one local Postgres server, and would start them empty. Choose one:',
    '  npm run data:migrate                 copies each folder into its database on the local server, then renames the folder to <name>.migrated',
    '  LOCAL_DATABASE=pglite npm start      keeps running these services on their PGlite folders',
    '  delete the folders                   to start with empty databases',
  ].join('\n');
}
