import { and, eq, ne, sql } from 'drizzle-orm';
import type { Logger } from '@civildiy/common';
import { indexQueue, postVectors, searchState } from './db/schema.ts';
import { generationCounts, type StatusCounts } from './index-status.ts';
import { lockGenerations, readGenerations, type SearchDb } from './search-state.ts';

/**
 * A reindex re-embeds every post into a new generation beside the active one. Its state lives in
 * the database (`search_state.building_generation` and the new generation's rows), so it survives
 * restarts: the batchers of every search-service process embed the new rows, a switcher makes the
 * new generation active once all its rows are done, and starting again while one is under way
 * resumes it.
 */

/** Where a reindex stands. */
export interface ReindexState {
  activeGeneration: number;
  /** The generation being built, with its rows by status; `null` when no reindex is under way. */
  building: { generation: number; startedAt: string | null; total: number; counts: StatusCounts } | null;
}

/**
 * Starts a reindex, or returns the one under way: in one transaction that holds off the consumers
 * (they read the generations `FOR SHARE`), names the next generation and copies every row of the
 * active one into it as pending. From then on each event is queued for both generations.
 */
export async function startReindex(db: SearchDb): Promise<{ generation: number; resumed: boolean; copied: number }> {
  return db.transaction(async (tx) => {
    const generations = await lockGenerations(tx, 'update');
    if (generations.building !== null) return { generation: generations.building, resumed: true, copied: 0 };
    const generation = generations.active + 1;
    // Rows or vectors left of an earlier, abandoned run of this number would mix in.
    await tx.delete(indexQueue).where(eq(indexQueue.generation, generation));
    await tx.delete(postVectors).where(eq(postVectors.generation, generation));
    await tx.update(searchState).set({ buildingGeneration: generation, buildingStartedAt: sql`clock_timestamp()` }).where(eq(searchState.id, 1));
    const copied = await tx.execute<{ copied: number }>(sql`
      with copied as (
        insert into index_queue (post_id, generation, version, text, title, excerpt, author_id, author_username, tags, post_created_at)
        select post_id, ${generation}, version, text, title, excerpt, author_id, author_username, tags, post_created_at
        from index_queue where generation = ${generations.active}
        returning 1
      )
      select count(*)::int as copied from copied`);
    return { generation, resumed: false, copied: Number(copied.rows[0]?.copied ?? 0) };
  });
}

/** Where the reindex stands (see {@link ReindexState}). */
export async function reindexState(db: SearchDb): Promise<ReindexState> {
  const generations = await readGenerations(db);
  if (generations.building === null) return { activeGeneration: generations.active, building: null };
  const counts = await generationCounts(db, generations.building);
  return {
    activeGeneration: generations.active,
    building: {
      generation: generations.building,
      startedAt: generations.buildingStartedAt?.toISOString() ?? null,
      total: counts.pending + counts.claimed + counts.done + counts.failed,
      counts,
    },
  };
}

/**
 * Makes the generation being built active once every one of its rows is done, in one transaction:
 * searches move to it at once, then the old generation's rows and vectors are deleted (rows
 * first, so a batch of the old generation still storing finishes before its vectors go).
 * Returns the switch, or `undefined` when there is nothing to switch yet.
 */
export async function switchIfComplete(db: SearchDb): Promise<{ generation: number; previous: number } | undefined> {
  const { building } = await readGenerations(db);
  if (building === null) return undefined;
  const [unfinished] = await db
    .select({ id: indexQueue.postId })
    .from(indexQueue)
    .where(and(eq(indexQueue.generation, building), ne(indexQueue.status, 'done')))
    .limit(1);
  if (unfinished) return undefined;
  return db.transaction(async (tx) => {
    const generations = await lockGenerations(tx, 'update');
    if (generations.building !== building) return undefined;
    const [open] = await tx
      .select({ id: indexQueue.postId })
      .from(indexQueue)
      .where(and(eq(indexQueue.generation, building), ne(indexQueue.status, 'done')))
      .limit(1);
    if (open) return undefined;
    const [vector] = await tx.select({ model: postVectors.model }).from(postVectors).where(eq(postVectors.generation, building)).limit(1);
    await tx
      .update(searchState)
      .set({
        activeGeneration: building,
        activeModel: vector?.model ?? generations.activeModel,
        buildingGeneration: null,
        buildingStartedAt: null,
        switchedAt: sql`clock_timestamp()`,
      })
      .where(eq(searchState.id, 1));
    await tx.delete(indexQueue).where(eq(indexQueue.generation, generations.active));
    await tx.delete(postVectors).where(eq(postVectors.generation, generations.active));
    return { generation: building, previous: generations.active };
  });
}

/** Drops the generation being built (its rows and vectors); searches never saw it. Returns its number, or `undefined` when none was. */
export async function abortReindex(db: SearchDb): Promise<number | undefined> {
  return db.transaction(async (tx) => {
    const generations = await lockGenerations(tx, 'update');
    if (generations.building === null) return undefined;
    await tx.delete(indexQueue).where(eq(indexQueue.generation, generations.building));
    await tx.delete(postVectors).where(eq(postVectors.generation, generations.building));
    await tx.update(searchState).set({ buildingGeneration: null, buildingStartedAt: null }).where(eq(searchState.id, 1));
    return generations.building;
  });
}

/**
 * Checks every `intervalMs` whether a reindex has finished and switches it (see
 * {@link switchIfComplete}); every search-service process runs one, the transaction makes one of
 * them switch.
 */
export class GenerationSwitcher {
  private timer: NodeJS.Timeout | undefined;
  private checking: Promise<void> | undefined;

  constructor(private readonly options: { db: SearchDb; intervalMs: number; logger: Logger }) {}

  /** Starts checking. Idempotent. */
  start(): void {
    this.timer ??= setInterval(() => void this.check(), this.options.intervalMs);
  }

  /** Checks now (one check at a time). */
  check(): Promise<void> {
    this.checking ??= switchIfComplete(this.options.db)
      .then((switched) => {
        if (switched) this.options.logger.info(switched, `search now serves generation ${switched.generation} (was ${switched.previous})`);
      })
      .catch((error: unknown) => this.options.logger.error({ err: error }, 'checking the reindex failed'))
      .finally(() => (this.checking = undefined));
    return this.checking;
  }

  /** Stops checking and waits for a check in progress. */
  async close(): Promise<void> {
    clearInterval(this.timer);
    await this.checking;
  }
}
