import { eq, sql } from 'drizzle-orm';
import type { Database, DbTransaction } from '@civildiy/common/db';
import { searchState } from './db/schema.ts';
import type * as schema from './db/schema.ts';

export type SearchDb = Database<typeof schema>;
export type SearchTx = DbTransaction<typeof schema>;

/** The generation searches read, as a subquery: statements see a switch the moment it commits. */
export const activeGeneration = sql`(select active_generation from search_state where id = 1)`;

/** Which index generations exist: the one searches read and, during a reindex, the one being built. */
export interface Generations {
  active: number;
  /** The model the active generation's vectors were made with (`null` before the first vectors). */
  activeModel: string | null;
  building: number | null;
  buildingStartedAt: Date | null;
}

function toGenerations(row: typeof searchState.$inferSelect | undefined): Generations {
  if (!row) throw new Error('search_state has no row: the migrations did not run');
  return { active: row.activeGeneration, activeModel: row.activeModel, building: row.buildingGeneration, buildingStartedAt: row.buildingStartedAt };
}

/** The current generations (no lock). */
export async function readGenerations(db: SearchDb | SearchTx): Promise<Generations> {
  const [row] = await db.select().from(searchState).where(eq(searchState.id, 1));
  return toGenerations(row);
}

/**
 * The generations, read under `lock`: writers of index work take `share` (they run side by side)
 * and a reindex starting or switching takes `update`, which waits for them and holds them off, so
 * every event lands in exactly the generations that exist when it commits.
 */
export async function lockGenerations(tx: SearchTx, lock: 'share' | 'update'): Promise<Generations> {
  const [row] = await tx.select().from(searchState).where(eq(searchState.id, 1)).for(lock);
  return toGenerations(row);
}

/** The generations new index work must go to: the active one and the one being built. */
export function liveGenerations(generations: Generations): number[] {
  return generations.building === null ? [generations.active] : [generations.active, generations.building];
}

/** The dimension of the `post_vectors.embedding` column, as the migrations created it. */
export async function columnDimensions(db: SearchDb): Promise<number> {
  const result = await db.execute<{ dimensions: number }>(
    sql`select atttypmod as dimensions from pg_attribute where attrelid = 'post_vectors'::regclass and attname = 'embedding'`,
  );
  return Number(result.rows[0]?.dimensions);
}
