import { and, eq, inArray, sql } from 'drizzle-orm';
import { derivedId, newId } from '@civildiy/common';
import type { EmbeddedBatch } from '@civildiy/common/contracts';
import { indexQueue, postVectors } from './db/schema.ts';
import { describeSpace, generationsIn, lockGenerations, readGenerations, type EmbeddingSpace, type SearchDb } from './search-state.ts';

/** One claimed row: what the batch sends and what it must match when the result comes back. */
export interface ClaimedRow {
  postId: string;
  generation: number;
  version: number;
  text: string;
}

/** Rows claimed together, sent as one `search.embed` task. */
export interface ClaimedBatch {
  /** UUIDv5 of the rows' keys, versions and claim counts: the task's idempotency key. */
  batchId: string;
  /** The space of the rows' generations: their vectors must have its dimension. */
  space: EmbeddingSpace;
  rows: ClaimedRow[];
}

/** The id a row's text carries in a batch (`postId:generation`). */
export function textId(row: Pick<ClaimedRow, 'postId' | 'generation'>): string {
  return `${row.postId}:${row.generation}`;
}

const leaseEnd = (leaseMs: number) => sql`clock_timestamp() + ${leaseMs} * interval '1 millisecond'`;

/**
 * Claims up to `limit` rows of the generations embedded in `space` (the worker's model and
 * dimension; see `generationsIn`): pending ones, and claimed ones whose lease has run out (their
 * claimer died), oldest first with the active generation's rows before a reindex's. `FOR UPDATE
 * SKIP LOCKED` lets several batchers claim at once without waiting on or taking each other's rows.
 *
 * The batch id is derived from the claimed rows, so it is set by a second statement of the same
 * transaction, found through a one-off claim token; the rows stay locked in between.
 */
export async function claimBatch(db: SearchDb, options: { claimer: string; limit: number; leaseMs: number; space: EmbeddingSpace }): Promise<ClaimedBatch | undefined> {
  return db.transaction(async (tx) => {
    const generations = await readGenerations(tx);
    const claimable = generationsIn(generations, options.space);
    if (claimable.length === 0) return undefined;
    const token = newId();
    const claimed = await tx.execute<{ post_id: string; generation: number; version: number; attempts: number; text: string }>(sql`
      with picked as (
        select post_id, generation from index_queue
        where (status = 'pending' or (status = 'claimed' and lease_until < clock_timestamp()))
          and generation in (${sql.join(claimable.map((generation) => sql`${generation}`), sql`, `)})
        order by generation <> ${generations.active}, queued_at
        limit ${options.limit}
        for update skip locked
      )
      update index_queue q
      set status = 'claimed', claimed_by = ${options.claimer}, lease_until = ${leaseEnd(options.leaseMs)},
          attempts = q.attempts + 1, batch_id = ${token}
      from picked
      where q.post_id = picked.post_id and q.generation = picked.generation
      returning q.post_id, q.generation, q.version, q.attempts, q.text`);
    if (claimed.rows.length === 0) return undefined;
    const rows = claimed.rows
      .map((row) => ({ postId: row.post_id, generation: Number(row.generation), version: Number(row.version), attempts: Number(row.attempts), text: row.text }))
      .sort((a, b) => textId(a).localeCompare(textId(b)));
    const batchId = derivedId('search.embed-batch', ...rows.map((row) => `${textId(row)}@${row.version}#${row.attempts}`));
    await tx.update(indexQueue).set({ batchId }).where(eq(indexQueue.batchId, token));
    return { batchId, space: options.space, rows: rows.map(({ attempts: _attempts, ...row }) => row) };
  });
}

/** Extends the lease of the rows the batch still holds; returns how many it holds. */
export async function renewLease(db: SearchDb, batch: ClaimedBatch, leaseMs: number): Promise<number> {
  const renewed = await db
    .update(indexQueue)
    .set({ leaseUntil: leaseEnd(leaseMs) })
    .where(and(eq(indexQueue.batchId, batch.batchId), eq(indexQueue.status, 'claimed')))
    .returning({ postId: indexQueue.postId });
  return renewed.length;
}

/**
 * Stores a batch's vectors and marks its rows done, in one transaction. Only rows the batch still
 * holds, of generations still embedded in the batch's space, are stored: a row superseded by a newer
 * version, removed by a delete or taken over after the lease is skipped. A vector replaces the
 * post's vector of the same generation unless that one is newer. Returns how many rows were stored
 * and skipped.
 * @throws Error when the result lacks a vector for a row (check with {@link embeddingProblem} first).
 */
export async function storeBatch(db: SearchDb, batch: ClaimedBatch, result: EmbeddedBatch): Promise<{ stored: number; skipped: number }> {
  const embeddings = new Map(result.vectors.map((vector) => [vector.id, vector.embedding]));
  return db.transaction(async (tx) => {
    // First, like every writer that touches both: search_state before index rows, so none deadlocks with a consumer.
    const generations = generationsIn(await lockGenerations(tx, 'share'), batch.space);
    if (generations.length === 0) return { stored: 0, skipped: batch.rows.length };
    const rows = await tx
      .update(indexQueue)
      .set({ status: 'done', leaseUntil: null, lastError: null, finishedAt: sql`clock_timestamp()` })
      .where(and(eq(indexQueue.batchId, batch.batchId), eq(indexQueue.status, 'claimed'), inArray(indexQueue.generation, generations)))
      .returning();
    const missing = rows.find((row) => !embeddings.has(textId(row)));
    if (missing) throw new Error(`The result of batch ${batch.batchId} has no vector for ${textId(missing)}`);
    if (rows.length > 0) {
      await tx
        .insert(postVectors)
        .values(
          rows.map((row) => ({
            id: derivedId('post-vector', row.postId, row.version),
            generation: row.generation,
            postId: row.postId,
            version: row.version,
            title: row.title,
            excerpt: row.excerpt,
            authorId: row.authorId,
            authorUsername: row.authorUsername,
            tags: row.tags,
            createdAt: row.postCreatedAt,
            embedding: embeddings.get(textId(row))!,
            model: result.model,
          })),
        )
        .onConflictDoUpdate({
          target: [postVectors.postId, postVectors.generation],
          set: {
            id: sql`excluded.id`,
            version: sql`excluded.version`,
            title: sql`excluded.title`,
            excerpt: sql`excluded.excerpt`,
            authorId: sql`excluded.author_id`,
            authorUsername: sql`excluded.author_username`,
            tags: sql`excluded.tags`,
            createdAt: sql`excluded.created_at`,
            embedding: sql`excluded.embedding`,
            model: sql`excluded.model`,
            indexedAt: sql`excluded.indexed_at`,
          },
          setWhere: sql`${postVectors.version} <= excluded.version`,
        });
    }
    return { stored: rows.length, skipped: batch.rows.length - rows.length };
  });
}

/** Marks the rows the batch still holds as failed with `error`; returns how many. */
export async function failBatch(db: SearchDb, batch: ClaimedBatch, error: string): Promise<number> {
  const failed = await db
    .update(indexQueue)
    .set({ status: 'failed', lastError: error.slice(0, 2_000), leaseUntil: null, finishedAt: sql`clock_timestamp()` })
    .where(and(eq(indexQueue.batchId, batch.batchId), eq(indexQueue.status, 'claimed')))
    .returning({ postId: indexQueue.postId });
  return failed.length;
}

/** Puts every failed row back to pending (its last error stays until it is indexed); returns how many. */
export async function redriveFailed(db: SearchDb): Promise<number> {
  const redriven = await db
    .update(indexQueue)
    .set({ status: 'pending', batchId: null, finishedAt: null, queuedAt: sql`clock_timestamp()` })
    .where(eq(indexQueue.status, 'failed'))
    .returning({ postId: indexQueue.postId });
  return redriven.length;
}

/**
 * Why a batch's result cannot be stored, or `undefined` when it can: it answers another batch,
 * lacks a row's vector, or has vectors of another dimension than the rows' generation holds.
 */
export function embeddingProblem(batch: ClaimedBatch, result: EmbeddedBatch): string | undefined {
  const { dimensions } = batch.space;
  if (result.batchId !== batch.batchId) return `the result is for batch ${result.batchId}, not ${batch.batchId}`;
  const embeddings = new Map(result.vectors.map((vector) => [vector.id, vector.embedding]));
  for (const row of batch.rows) {
    const embedding = embeddings.get(textId(row));
    if (!embedding) return `the result has no vector for ${textId(row)}`;
    if (embedding.length !== dimensions) {
      return `model ${result.model} returned ${embedding.length} dimensions; generation ${row.generation} holds ${describeSpace(batch.space)} (the worker's EMBEDDINGS_MODEL and EMBEDDINGS_DIMENSIONS must be search-service's)`;
    }
    if (!embedding.every(Number.isFinite)) return `the vector for ${textId(row)} has a non-finite value`;
  }
  return undefined;
}
