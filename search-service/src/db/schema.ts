import { sql } from 'drizzle-orm';
import { check, index, integer, pgTable, primaryKey, text, timestamp, uniqueIndex, uuid, vector } from 'drizzle-orm/pg-core';

export { inboxTable, outboxTable } from '@civildiy/common/outbox/schema';

/**
 * The embedding dimension the tables are built for. It is part of the column type, so a model with
 * another dimension needs a new migration (column type and HNSW index) followed by a reindex.
 */
export const EMBEDDING_DIMENSIONS = 256;

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
    embedding: vector('embedding', { dimensions: EMBEDDING_DIMENSIONS }).notNull(),
    /** The model the provider reported for this vector. */
    model: text('model').notNull(),
    indexedAt: timestamp('indexed_at', { withTimezone: true, mode: 'date' }).notNull().defaultNow(),
  },
  (table) => [
    primaryKey({ columns: [table.postId, table.generation] }),
    uniqueIndex('post_vectors_id_generation_idx').on(table.id, table.generation),
    // ef_construction 200 (pgvector's default is 64): a better graph, so ef_search 100 finds ~0.98 of
    // the exact top 10 on 10k posts instead of ~0.93, for about 1.5× the insert cost (bench/search.ts).
    index('post_vectors_embedding_hnsw_idx').using('hnsw', table.embedding.op('vector_cosine_ops')).with({ m: 16, ef_construction: 200 }),
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
 * One row (id 1): the generation searches read, its model, and the generation a reindex is building.
 * Consumers read it `FOR SHARE`, a reindex changes it `FOR UPDATE`, so no event slips between them.
 */
export const searchState = pgTable(
  'search_state',
  {
    id: integer('id').primaryKey(),
    activeGeneration: integer('active_generation').notNull().default(1),
    /** The model the active generation was embedded with; `null` until its first vectors. */
    activeModel: text('active_model'),
    buildingGeneration: integer('building_generation'),
    buildingStartedAt: timestamp('building_started_at', { withTimezone: true, mode: 'date' }),
    switchedAt: timestamp('switched_at', { withTimezone: true, mode: 'date' }),
  },
  (table) => [check('search_state_single_row', sql`${table.id} = 1`)],
);
