import { and, eq, inArray, ne, sql } from 'drizzle-orm';
import type { Logger } from '@civildiy/common';
import { indexQueue, postVectors, searchState } from './db/schema.ts';
import { ensureHnswIndexes } from './hnsw-index.ts';
import { generationCounts, type StatusCounts } from './index-status.ts';
import { describeSpace, lockGenerations, readGenerations, sameSpace, type EmbeddingSpace, type Generations, type SearchDb, type SearchTx } from './search-state.ts';

/**
 * A reindex re-embeds every post into a new generation beside the active one, in a space (model and
 * dimension) of its own: the configured one. Its state lives in the database
 * (`search_state.building_*` and the new generation's rows), so it survives restarts: the batchers
 * of every search-service process embed the new rows, a switcher makes the new generation active
 * once all its rows are done, and starting again while one is under way resumes it. At start,
 * search-service reindexes by itself when the configured space is not the one searches read
 * ({@link followConfiguredSpace}).
 */

/** Where a reindex stands. */
export interface ReindexState {
  activeGeneration: number;
  /** The model and dimension of the active generation (`null` before search-service first started). */
  model: string | null;
  dimensions: number | null;
  /** The generation being built, its space and its rows by status; `null` when no reindex is under way. */
  building: { generation: number; model: string | null; dimensions: number | null; startedAt: string | null; total: number; counts: StatusCounts } | null;
}

/** A reindex started, or the one under way. */
export interface StartedReindex {
  generation: number;
  resumed: boolean;
  /** Rows copied into the new generation (0 when resumed). */
  copied: number;
}

/**
 * Names the next generation, in `space`, and copies every row of the active one into it as pending
 * (inside a transaction holding the generations `FOR UPDATE`).
 */
async function beginGeneration(tx: SearchTx, generations: Generations, space: EmbeddingSpace): Promise<StartedReindex> {
  const generation = generations.active + 1;
  // Rows or vectors left of an earlier, abandoned run of this number would mix in.
  await tx.delete(indexQueue).where(eq(indexQueue.generation, generation));
  await tx.delete(postVectors).where(eq(postVectors.generation, generation));
  await tx
    .update(searchState)
    .set({ buildingGeneration: generation, buildingModel: space.model, buildingDimensions: space.dimensions, buildingStartedAt: sql`clock_timestamp()` })
    .where(eq(searchState.id, 1));
  const copied = await tx.execute<{ copied: number }>(sql`
    with copied as (
      insert into index_queue (post_id, generation, version, text, title, excerpt, author_id, author_username, tags, post_created_at)
      select post_id, ${generation}, version, text, title, excerpt, author_id, author_username, tags, post_created_at
      from index_queue where generation = ${generations.active}
      returning 1
    )
    select count(*)::int as copied from copied`);
  return { generation, resumed: false, copied: Number(copied.rows[0]?.copied ?? 0) };
}

/** Deletes the generation being built (rows and vectors) and forgets it; returns its number and space. */
async function dropBuilding(tx: SearchTx, generations: Generations): Promise<{ generation: number; space: EmbeddingSpace | null } | undefined> {
  if (generations.building === null) return undefined;
  await tx.delete(indexQueue).where(eq(indexQueue.generation, generations.building));
  await tx.delete(postVectors).where(eq(postVectors.generation, generations.building));
  await tx.update(searchState).set({ buildingGeneration: null, buildingModel: null, buildingDimensions: null, buildingStartedAt: null }).where(eq(searchState.id, 1));
  return { generation: generations.building, space: generations.buildingSpace };
}

/**
 * Starts a reindex into `space` (the configured model and dimension), or returns the one under way:
 * in one transaction that holds off the consumers (they read the generations `FOR SHARE`), names
 * the next generation and copies every row of the active one into it as pending. From then on each
 * event is queued for both generations.
 */
export async function startReindex(db: SearchDb, space: EmbeddingSpace): Promise<StartedReindex> {
  return db.transaction(async (tx) => {
    const generations = await lockGenerations(tx, 'update');
    if (generations.building !== null) return { generation: generations.building, resumed: true, copied: 0 };
    return beginGeneration(tx, generations, space);
  });
}

/** What {@link followConfiguredSpace} found and did. */
export interface SpaceFollowed {
  /**
   * `serving`: searches read the configured space already (a reindex in it under way continues).
   * `adopted`: the active generation had no vector yet and takes the configured space as it is.
   * `reindexing`: searches read another space until a generation in the configured one is built
   * (`started` says whether it was started now or resumed).
   */
  action: 'serving' | 'adopted' | 'reindexing';
  /** The generation searches read, and its space before (for `adopted`, the space it had). */
  active: { generation: number; space: EmbeddingSpace | null };
  /** `reindexing`: the generation being built in the configured space. */
  started?: StartedReindex;
  /** A reindex into another space that was under way and was dropped. */
  aborted?: { generation: number; space: EmbeddingSpace | null };
}

/**
 * Makes the index follow the configured space (`EMBEDDINGS_MODEL`, `EMBEDDINGS_DIMENSIONS`), at
 * search-service's start, in one transaction holding the generations `FOR UPDATE` (processes
 * starting together take turns):
 *
 * 1. a reindex under way into another space is dropped (the worker no longer embeds in it);
 * 2. an active generation without a vector takes the configured space as it is, and its claimed
 *    and failed rows are queued again (a batch of the old space in flight stores nothing);
 * 3. an active generation with vectors in another space keeps answering searches, with queries
 *    embedded in its own space, while a reindex builds a generation in the configured one (or the
 *    one under way continues); the switcher makes it active once complete.
 */
export async function followConfiguredSpace(db: SearchDb, space: EmbeddingSpace): Promise<SpaceFollowed> {
  return db.transaction(async (tx) => {
    let generations = await lockGenerations(tx, 'update');
    const active = { generation: generations.active, space: generations.activeSpace };
    let aborted: SpaceFollowed['aborted'];
    if (generations.building !== null && !sameSpace(generations.buildingSpace, space)) {
      aborted = await dropBuilding(tx, generations);
      generations = { ...generations, building: null, buildingSpace: null, buildingStartedAt: null };
    }
    const outcome = (rest: Pick<SpaceFollowed, 'action' | 'started'>): SpaceFollowed => ({ ...rest, active, ...(aborted ? { aborted } : {}) });
    if (sameSpace(generations.activeSpace, space)) return outcome({ action: 'serving' });
    const [vector] = await tx.select({ id: postVectors.id }).from(postVectors).where(eq(postVectors.generation, generations.active)).limit(1);
    if (!vector) {
      await tx.update(searchState).set({ activeModel: space.model, activeDimensions: space.dimensions }).where(eq(searchState.id, 1));
      await tx
        .update(indexQueue)
        .set({ status: 'pending', claimedBy: null, leaseUntil: null, batchId: null, finishedAt: null, queuedAt: sql`clock_timestamp()` })
        .where(and(eq(indexQueue.generation, generations.active), inArray(indexQueue.status, ['claimed', 'failed'])));
      return outcome({ action: 'adopted' });
    }
    if (generations.building !== null) return outcome({ action: 'reindexing', started: { generation: generations.building, resumed: true, copied: 0 } });
    return outcome({ action: 'reindexing', started: await beginGeneration(tx, generations, space) });
  });
}

/** Where the reindex stands (see {@link ReindexState}). */
export async function reindexState(db: SearchDb): Promise<ReindexState> {
  const generations = await readGenerations(db);
  const active = { activeGeneration: generations.active, model: generations.activeSpace?.model ?? null, dimensions: generations.activeSpace?.dimensions ?? null };
  if (generations.building === null) return { ...active, building: null };
  const counts = await generationCounts(db, generations.building);
  return {
    ...active,
    building: {
      generation: generations.building,
      model: generations.buildingSpace?.model ?? null,
      dimensions: generations.buildingSpace?.dimensions ?? null,
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
export async function switchIfComplete(db: SearchDb): Promise<{ generation: number; previous: number; space: EmbeddingSpace | null } | undefined> {
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
    const space = generations.buildingSpace ?? generations.activeSpace;
    await tx
      .update(searchState)
      .set({
        activeGeneration: building,
        activeModel: space?.model ?? null,
        activeDimensions: space?.dimensions ?? null,
        buildingGeneration: null,
        buildingModel: null,
        buildingDimensions: null,
        buildingStartedAt: null,
        switchedAt: sql`clock_timestamp()`,
      })
      .where(eq(searchState.id, 1));
    await tx.delete(indexQueue).where(eq(indexQueue.generation, generations.active));
    await tx.delete(postVectors).where(eq(postVectors.generation, generations.active));
    return { generation: building, previous: generations.active, space };
  });
}

/** Drops the generation being built (its rows and vectors); searches never saw it. Returns its number, or `undefined` when none was. */
export async function abortReindex(db: SearchDb): Promise<number | undefined> {
  return db.transaction(async (tx) => {
    return (await dropBuilding(tx, await lockGenerations(tx, 'update')))?.generation;
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
        if (switched) {
          this.options.logger.info(switched, `search now serves generation ${switched.generation}, ${describeSpace(switched.space)} (was ${switched.previous})`);
        }
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

/**
 * search-service's start, before its batcher and HTTP: makes the index follow the configured space
 * ({@link followConfiguredSpace}) and makes the HNSW index of every dimension in use (the configured
 * one, the active and the building generation's; see hnsw-index.ts). Says what it did.
 */
export async function prepareIndex(db: SearchDb, space: EmbeddingSpace, logger: Logger): Promise<SpaceFollowed> {
  const followed = await followConfiguredSpace(db, space);
  const generations = await readGenerations(db);
  const dimensions = [space.dimensions, generations.activeSpace?.dimensions, generations.buildingSpace?.dimensions].filter((each) => each !== undefined);
  for (const made of await ensureHnswIndexes(db, dimensions)) logger.info({ dimensions: made }, `made the HNSW index of ${made}-dimension vectors`);
  if (followed.aborted) {
    logger.warn(
      { aborted: followed.aborted.generation },
      `dropped the unfinished reindex into generation ${followed.aborted.generation}, ${describeSpace(followed.aborted.space)}: EMBEDDINGS_MODEL and EMBEDDINGS_DIMENSIONS now say ${describeSpace(space)}`,
    );
  }
  const active = `generation ${followed.active.generation}, ${describeSpace(followed.active.space)}`;
  if (followed.action === 'serving') {
    logger.info({ generation: followed.active.generation, ...space }, `search serves ${active}`);
  } else if (followed.action === 'adopted') {
    logger.info({ generation: followed.active.generation, ...space }, `search serves generation ${followed.active.generation}, ${describeSpace(space)} (it held no vector yet${followed.active.space ? `; was ${describeSpace(followed.active.space)}` : ''})`);
  } else {
    const started = followed.started!;
    logger.warn(
      { serving: followed.active.generation, building: started.generation, ...space, copied: started.copied, resumed: started.resumed },
      `EMBEDDINGS_MODEL and EMBEDDINGS_DIMENSIONS say ${describeSpace(space)}, not what the index holds: search keeps serving ${active}, with queries embedded by its model, ` +
        `while generation ${started.generation} is embedded with ${space.model}${started.resumed ? ' (under way already)' : ` (${started.copied} posts)`}; it switches once that is complete ` +
        '(follow it: npm run search:reindex -w search-service, or GET /search/index/reindex)',
    );
  }
  return followed;
}
