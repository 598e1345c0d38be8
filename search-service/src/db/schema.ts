import { sql } from 'drizzle-orm';
import { check, customType, index, integer, pgTable, primaryKey, text, timestamp, uniqueIndex, uuid } from 'drizzle-orm/pg-core';

export { inboxTable, outboxTable } from '@civildiy/common/outbox/schema';

/**
 * pgvector's `vector` without a dimension: each index generation stores vectors of its own model's
 * dimension in the one column. A vector's text is `[0.1,-0.2,…]` on both drivers.
 */
const anyVector = customType<{ data: number[]; driverData: string }>({
  dataType: () => 'vector',
  toDriver: (value) => JSON.stringify(value),
  fromDriver: (value) => value.slice(1, -1).split(',').map(Number.parseFloat),
});

export type IndexRowStatus = 'pending' | 'claimed' | 'done' | 'failed';

/**
 * The buffer table: one row per post and index generation (a batch names its text `postId:generation`) holding the newest version seen, the
 * text to embed and the fields a search result shows. The consumer writes it; batchers claim
 * pending rows (or rows whose claimer's lease ran out), embed them on the worker and mark them
 * done. Done rows stay: they are the version guard for late events and the source of a reindex.
 */
export const indexQueue = pgTable(
  'index_queue',
  {
    postId: uuid('post_id').notNull(),
    /** The index generation this row feeds (a reindex builds the next one beside the active one). */
    generation: integer('generation').notNull(),
    /** The post version of `text`; only a newer version replaces it. */
    version: integer('version').notNull(),
    /** Title, tags and body, cut to `SEARCH_TEXT_MAX_CHARS`. */
    text: text('text').notNull(),
    title: text('title').notNull(),
    excerpt: text('excerpt').notNull(),
    authorId: uuid('author_id').notNull(),
    authorUsername: text('author_username'),
    tags: text('tags').array().notNull(),
    postCreatedAt: timestamp('post_created_at', { withTimezone: true, mode: 'date' }).notNull(),
    status: text('status').$type<IndexRowStatus>().notNull().default('pending'),
    /** The batcher that last claimed the row (it holds it while `status = 'claimed'`). */
    claimedBy: text('claimed_by'),
    /** A claimed row whose lease has passed may be claimed again (its claimer is presumed dead). */
    leaseUntil: timestamp('lease_until', { withTimezone: true, mode: 'date' }),
    /** How many times the row was claimed for a batch (part of the batch id, so a re-sent row makes a new task). */
    attempts: integer('attempts').notNull().default(0),
    lastError: text('last_error'),
    /** The `search.embed` batch that last claimed the row; a result is only stored while it still holds it. */
    batchId: uuid('batch_id'),
    /** When the row (last) became pending: batches take the oldest first. */
    queuedAt: timestamp('queued_at', { withTimezone: true, mode: 'date' }).notNull().default(sql`clock_timestamp()`),
    /** When it was last marked done or failed. */
    finishedAt: timestamp('finished_at', { withTimezone: true, mode: 'date' }),
  },
  (table) => [
    primaryKey({ columns: [table.postId, table.generation] }),
    check('index_queue_status_check', sql`${table.status} in ('pending', 'claimed', 'done', 'failed')`),
    index('index_queue_pending_idx').on(table.queuedAt).where(sql`${table.status} = 'pending'`),
    index('index_queue_claimed_idx').on(table.leaseUntil).where(sql`${table.status} = 'claimed'`),
    index('index_queue_batch_idx').on(table.batchId).where(sql`${table.status} = 'claimed'`),
    index('index_queue_failed_idx').on(table.postId, table.generation).where(sql`${table.status} = 'failed'`),
    index('index_queue_generation_status_idx').on(table.generation, table.status),
  ],
);

/**
 * The searchable vectors: one per post and generation, at the post's newest indexed version.
 * `id` = UUIDv5(post id, version), so re-storing a batch writes the same row.
 */
export const postVectors = pgTable(
  'post_vectors',
  {
    id: uuid('id').notNull(),
    generation: integer('generation').notNull(),
    postId: uuid('post_id').notNull(),
    version: integer('version').notNull(),
    title: text('title').notNull(),
    excerpt: text('excerpt').notNull(),
    authorId: uuid('author_id').notNull(),
    authorUsername: text('author_username'),
    tags: text('tags').array().notNull(),
    createdAt: timestamp('created_at', { withTimezone: true, mode: 'date' }).notNull(),
    /** Of its generation's dimension (`search_state`); searched through the HNSW index of that dimension (hnsw-index.ts). */
    embedding: anyVector('embedding').notNull(),
    /** The model the provider reported for this vector. */
    model: text('model').notNull(),
    indexedAt: timestamp('indexed_at', { withTimezone: true, mode: 'date' }).notNull().defaultNow(),
  },
  (table) => [
    primaryKey({ columns: [table.postId, table.generation] }),
    uniqueIndex('post_vectors_id_generation_idx').on(table.id, table.generation),
    // The HNSW indexes are not declared here: one partial index per dimension, made by hnsw-index.ts
    // (migration 0004 made the one of 256 dimensions).
    index('post_vectors_tags_idx').using('gin', table.tags),
  ],
);

/** Deleted posts at their delete's version: a late create or update of them is ignored. */
export const postTombstones = pgTable('post_tombstones', {
  postId: uuid('post_id').primaryKey(),
  version: integer('version').notNull(),
  deletedAt: timestamp('deleted_at', { withTimezone: true, mode: 'date' }).notNull().defaultNow(),
});

/**
 * One row (id 1): the generation searches read and the generation a reindex is building, each with
 * the model and dimension it is embedded with (`EMBEDDINGS_MODEL` and `EMBEDDINGS_DIMENSIONS` when it
 * was made): queries of a generation are embedded with its own. Consumers read it `FOR SHARE`, a
 * reindex changes it `FOR UPDATE`, so no event slips between them.
 */
export const searchState = pgTable(
  'search_state',
  {
    id: integer('id').primaryKey(),
    activeGeneration: integer('active_generation').notNull().default(1),
    /** The active generation's model; `null` only before search-service first started on the database. */
    activeModel: text('active_model'),
    /** The active generation's vector dimension (`null` as {@link searchState.activeModel}). */
    activeDimensions: integer('active_dimensions'),
    buildingGeneration: integer('building_generation'),
    /** The model of the generation being built (`null` when none is). */
    buildingModel: text('building_model'),
    buildingDimensions: integer('building_dimensions'),
    buildingStartedAt: timestamp('building_started_at', { withTimezone: true, mode: 'date' }),
    switchedAt: timestamp('switched_at', { withTimezone: true, mode: 'date' }),
  },
  (table) => [check('search_state_single_row', sql`${table.id} = 1`)],
);
