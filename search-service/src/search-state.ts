import { eq, sql } from 'drizzle-orm';
import type { Database, DbTransaction } from '@civildiy/common/db';
import { searchState } from './db/schema.ts';
import type * as schema from './db/schema.ts';

export type SearchDb = Database<typeof schema>;
export type SearchTx = DbTransaction<typeof schema>;

/** The generation searches read, as a subquery: statements see a switch the moment it commits. */
export const activeGeneration = sql`(select active_generation from search_state where id = 1)`;

/**
 * The model and dimension vectors are made with: vectors of two spaces cannot be compared, so each
 * generation is embedded, and its queries too, in one space.
 */
export interface EmbeddingSpace {
  model: string;
  dimensions: number;
}

/** `all-minilm-l6-v2-q (384 dimensions)`. */
export function describeSpace(space: EmbeddingSpace | null): string {
  return space ? `${space.model} (${space.dimensions} dimensions)` : 'no model yet';
}

/** Whether `a` and `b` are the same space. */
export function sameSpace(a: EmbeddingSpace | null, b: EmbeddingSpace | null): boolean {
  return a !== null && b !== null && a.model === b.model && a.dimensions === b.dimensions;
}

/** Which index generations exist: the one searches read and, during a reindex, the one being built. */
export interface Generations {
  active: number;
  /** The active generation's space; `null` only before search-service first started on the database. */
  activeSpace: EmbeddingSpace | null;
  building: number | null;
  /** The space of the generation being built (`null` when none is). */
  buildingSpace: EmbeddingSpace | null;
  buildingStartedAt: Date | null;
}

const spaceOf = (model: string | null, dimensions: number | null): EmbeddingSpace | null => (model === null || dimensions === null ? null : { model, dimensions });

function toGenerations(row: typeof searchState.$inferSelect | undefined): Generations {
  if (!row) throw new Error('search_state has no row: the migrations did not run');
  return {
    active: row.activeGeneration,
    activeSpace: spaceOf(row.activeModel, row.activeDimensions),
    building: row.buildingGeneration,
    buildingSpace: row.buildingGeneration === null ? null : spaceOf(row.buildingModel, row.buildingDimensions),
    buildingStartedAt: row.buildingStartedAt,
  };
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

/**
 * The live generations embedded in `space`: the rows a batcher whose worker embeds in `space` may
 * claim. During a reindex into another space the active generation's new rows wait (the worker no
 * longer embeds in its space) and go with it at the switch.
 */
export function generationsIn(generations: Generations, space: EmbeddingSpace): number[] {
  const live: [number, EmbeddingSpace | null][] = [[generations.active, generations.activeSpace]];
  if (generations.building !== null) live.push([generations.building, generations.buildingSpace]);
  return live.filter(([, of]) => sameSpace(of, space)).map(([generation]) => generation);
}
