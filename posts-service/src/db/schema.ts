import { sql } from 'drizzle-orm';
import { index, integer, jsonb, pgTable, text, timestamp, uniqueIndex, uuid } from 'drizzle-orm/pg-core';

export { inboxTable, outboxTable } from '@civildiy/common/outbox/schema';

/** The open-shaped part of a post, kept as one JSONB document (the MongoDB store keeps the same fields). */
export interface PostDocument {
  title: string;
  body: string;
  tags: string[];
}

export const posts = pgTable(
  'posts',
  {
    /** UUIDv7: its order is the creation order, which the list pages by. */
    id: uuid('id').primaryKey(),
    authorId: uuid('author_id').notNull(),
    authorUsername: text('author_username'),
    doc: jsonb('doc').$type<PostDocument>().notNull(),
    version: integer('version').notNull(),
    expiresAt: timestamp('expires_at', { withTimezone: true, mode: 'date' }),
    createdAt: timestamp('created_at', { withTimezone: true, mode: 'date' }).notNull(),
    updatedAt: timestamp('updated_at', { withTimezone: true, mode: 'date' }).notNull(),
    /** The client's `Idempotency-Key`, unique per author. */
    idempotencyKey: text('idempotency_key'),
    /** SHA-256 of the canonical create request, to tell a true repeat from a key reused with another body. */
    requestHash: text('request_hash'),
  },
  (table) => [
    index('posts_author_id_idx').on(table.authorId, table.id),
    index('posts_tags_idx').using('gin', sql`(${table.doc} -> 'tags') jsonb_path_ops`),
    index('posts_expires_at_idx').on(table.expiresAt).where(sql`${table.expiresAt} is not null`),
    uniqueIndex('posts_author_idempotency_key_idx').on(table.authorId, table.idempotencyKey).where(sql`${table.idempotencyKey} is not null`),
  ],
);
