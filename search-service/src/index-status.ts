import { and, asc, eq, ne, or, gt, sql } from 'drizzle-orm';
import { ValidationError } from '@civildiy/common';
import { indexQueue, type IndexRowStatus } from './db/schema.ts';
import { readGenerations, type SearchDb } from './search-state.ts';

export type StatusCounts = Record<IndexRowStatus, number>;

/** A row whose batch failed for good. */
export interface FailedRow {
  postId: string;
  generation: number;
  version: number;
  title: string;
  attempts: number;
  lastError: string | null;
  failedAt: string | null;
}

/** `GET /search/index/status`. */
export interface IndexStatus {
  activeGeneration: number;
  /** The model of the vectors searches read, and queries are embedded with (`null` before search-service first started). */
  model: string | null;
  /** Their dimension. */
  dimensions: number | null;
  /** Rows of the active generation by status. */
  counts: StatusCounts;
  /** The generation a reindex is building, its model and dimension, and its rows by status; `null` when none runs. */
  reindex: { generation: number; model: string | null; dimensions: number | null; startedAt: string | null; counts: StatusCounts } | null;
  /** Failed rows of every generation, in pages. */
  failed: { items: FailedRow[]; nextCursor: string | null };
}

const EMPTY: StatusCounts = { pending: 0, claimed: 0, done: 0, failed: 0 };

/** Rows of one generation by status. */
export async function generationCounts(db: SearchDb, generation: number): Promise<StatusCounts> {
  const rows = await db
    .select({ status: indexQueue.status, count: sql<number>`count(*)::int` })
    .from(indexQueue)
    .where(eq(indexQueue.generation, generation))
    .groupBy(indexQueue.status);
  return { ...EMPTY, ...Object.fromEntries(rows.map((row) => [row.status, Number(row.count)])) };
}

/** Rows not done, by status, over every generation (the metrics gauges). */
export async function openRowCounts(db: SearchDb): Promise<{ pending: number; claimed: number; failed: number }> {
  const rows = await db
    .select({ status: indexQueue.status, count: sql<number>`count(*)::int` })
    .from(indexQueue)
    .where(ne(indexQueue.status, 'done'))
    .groupBy(indexQueue.status);
  const counts = { pending: 0, claimed: 0, failed: 0 };
  for (const row of rows) if (row.status !== 'done') counts[row.status] = Number(row.count);
  return counts;
}

function encodeCursor(row: { postId: string; generation: number }): string {
  return `${row.postId}.${row.generation}`;
}

function decodeCursor(cursor: string): { postId: string; generation: number } {
  const match = /^([0-9a-f-]{36})\.(\d{1,9})$/i.exec(cursor);
  if (!match) throw new ValidationError('This cursor was not returned by this list', 'search.invalid_cursor');
  return { postId: match[1]!, generation: Number(match[2]) };
}

/** The index's state: generations, counts, and a page of failed rows (`cursor` = the previous page's `nextCursor`). */
export async function indexStatus(db: SearchDb, page: { limit: number; cursor?: string }): Promise<IndexStatus> {
  const generations = await readGenerations(db);
  const after = page.cursor === undefined ? undefined : decodeCursor(page.cursor);
  const failedRows = await db
    .select()
    .from(indexQueue)
    .where(
      and(
        eq(indexQueue.status, 'failed'),
        after ? or(gt(indexQueue.postId, after.postId), and(eq(indexQueue.postId, after.postId), gt(indexQueue.generation, after.generation))) : undefined,
      ),
    )
    .orderBy(asc(indexQueue.postId), asc(indexQueue.generation))
    .limit(page.limit + 1);
  const items = failedRows.slice(0, page.limit);
  return {
    activeGeneration: generations.active,
    model: generations.activeSpace?.model ?? null,
    dimensions: generations.activeSpace?.dimensions ?? null,
    counts: await generationCounts(db, generations.active),
    reindex:
      generations.building === null
        ? null
        : {
            generation: generations.building,
            model: generations.buildingSpace?.model ?? null,
            dimensions: generations.buildingSpace?.dimensions ?? null,
            startedAt: generations.buildingStartedAt?.toISOString() ?? null,
            counts: await generationCounts(db, generations.building),
          },
    failed: {
      items: items.map((row) => ({
        postId: row.postId,
        generation: row.generation,
        version: row.version,
        title: row.title,
        attempts: row.attempts,
        lastError: row.lastError,
        failedAt: row.finishedAt?.toISOString() ?? null,
      })),
      nextCursor: failedRows.length > page.limit ? encodeCursor(items[items.length - 1]!) : null,
    },
  };
}
