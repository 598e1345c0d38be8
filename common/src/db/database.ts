import type { PgDatabase, PgQueryResultHKT, PgTransaction } from 'drizzle-orm/pg-core';
import type { ExtractTablesWithRelations, TablesRelationalConfig } from 'drizzle-orm';

/**
 * The result shape of `db.execute()` on both drivers: PGlite's `Results` and node-postgres'
 * `QueryResult` both carry the rows in `rows`.
 */
export interface DbQueryResultHKT extends PgQueryResultHKT {
  type: DbQueryResult<this['row']>;
}

/** What `db.execute()` resolves to (on both drivers). */
export interface DbQueryResult<TRow> {
  rows: TRow[];
}

/**
 * A service's Drizzle database, the same type on PGlite and on a Postgres server: query builder,
 * relational queries over `TSchema`, `execute()` (rows in `.rows`) and `transaction()`.
 */
export type Database<TSchema extends Record<string, unknown> = Record<string, never>> = PgDatabase<
  DbQueryResultHKT,
  TSchema,
  ExtractTablesWithRelations<TSchema>
>;

/** A transaction of a {@link Database} (what `db.transaction(async (tx) => …)` hands out). */
export type DbTransaction<TSchema extends Record<string, unknown> = Record<string, never>> = PgTransaction<
  DbQueryResultHKT,
  TSchema,
  ExtractTablesWithRelations<TSchema>
>;

/**
 * Anything that runs queries: a {@link Database} of any schema or one of its transactions. The
 * outbox and inbox take this, so they work inside the caller's transaction whatever its schema.
 */
export type DbExecutor = PgDatabase<PgQueryResultHKT, Record<string, unknown>, TablesRelationalConfig>;
