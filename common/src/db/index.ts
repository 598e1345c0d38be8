export type { Database, DbTransaction, DbExecutor, DbQueryResultHKT, DbQueryResult } from './database.ts';
export { openDatabase, type OpenDatabaseOptions, type OpenDatabase } from './open-database.ts';
export { MIGRATIONS_SCHEMA, migrationsTableFor, migrationLockKey, type MigrationRun } from './migrations.ts';
export { isUniqueViolation, UNIQUE_VIOLATION } from './unique-violation.ts';
export { DatabaseGoneError, isDatabaseUnavailable } from './database-unavailable.ts';
export { startEmbeddedVacuum } from './embedded-vacuum.ts';
export { LocalPostgres, LocalPostgresUnavailableError, type LocalPostgresOptions } from './local-postgres.ts';
