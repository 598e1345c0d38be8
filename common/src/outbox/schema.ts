import { sql } from 'drizzle-orm';
import { check, index, integer, jsonb, pgTable, primaryKey, text, timestamp, uuid } from 'drizzle-orm/pg-core';

/**
 * The transactional outbox: messages written in the same transaction as the domain change and
 * delivered afterwards by the {@link OutboxRelay}. Include it in a service's `db/schema.ts`
 * (`export { outboxTable, inboxTable } from '@civildiy/common/outbox';`) so the service's
 * drizzle-kit migrations create it.
 */
export const outboxTable = pgTable(
  'outbox',
  {
    /** Row id: the envelope id for events, a new UUIDv7 (or one derived from the idempotency key) for tasks. */
    id: uuid('id').primaryKey(),
    /** `event` (published to the event bus) or `task` (enqueued on the task queue). */
    kind: text('kind').$type<'event' | 'task'>().notNull(),
    /** The event type (`post.created`) or the task name (`orders.process`). */
    name: text('name').notNull(),
    /** The event's topic or the task's queue. */
    destination: text('destination').notNull(),
    /** Ordering key: the event key (aggregate id) or the task's idempotency key. Rows of one key are delivered in order. */
    key: text('key').notNull(),
    /** Events: the full envelope. Tasks: `{ input, options, context }`. */
    payload: jsonb('payload').notNull(),
    /** Write time; `clock_timestamp()` so rows of one transaction keep their order. */
    createdAt: timestamp('created_at', { withTimezone: true }).notNull().default(sql`clock_timestamp()`),
    /**
     * Not tried before this time: the end of the backoff after a failed attempt, or the end of the
     * lease while a relay holds the row. A pending row whose `available_at` is in the future holds
     * back the later rows of its key.
     */
    availableAt: timestamp('available_at', { withTimezone: true }).notNull().defaultNow(),
    /**
     * The claim of the relay delivering the row (`null` when none holds it). The relay that claimed
     * it records the outcome only while the claim is still its own, so a relay whose lease ran out
     * never overwrites the state set by the one that took the row over.
     */
    leaseId: uuid('lease_id'),
    /** Failed delivery attempts so far. */
    attempts: integer('attempts').notNull().default(0),
    /** The last delivery error. */
    lastError: text('last_error'),
    /** When the row was delivered; `null` while pending. */
    sentAt: timestamp('sent_at', { withTimezone: true }),
    /**
     * When the row was found undeliverable (unknown task, input failing its schema, a permanent
     * error from the broker); `null` otherwise. Such a row is kept, not retried and no longer holds
     * back its key, until an operator redrives it.
     */
    failedAt: timestamp('failed_at', { withTimezone: true }),
  },
  (table) => [
    check('outbox_kind_check', sql`${table.kind} in ('event', 'task')`),
    index('outbox_pending_idx').on(table.createdAt, table.id).where(sql`${table.sentAt} is null`),
    index('outbox_pending_key_idx').on(table.destination, table.key, table.createdAt).where(sql`${table.sentAt} is null`),
    index('outbox_sent_idx').on(table.sentAt).where(sql`${table.sentAt} is not null`),
  ],
);

/** A row of {@link outboxTable}. */
export type OutboxRow = typeof outboxTable.$inferSelect;

/**
 * The inbox: which events each consumer group of the service has processed, so a redelivered
 * event is skipped (see {@link processOnce}). Include it in the service's `db/schema.ts`.
 */
export const inboxTable = pgTable(
  'inbox',
  {
    /** The subscribing group (usually the service name, or `service:projection`). */
    consumerGroup: text('consumer_group').notNull(),
    /** The envelope id. */
    eventId: uuid('event_id').notNull(),
    processedAt: timestamp('processed_at', { withTimezone: true }).notNull().defaultNow(),
  },
  (table) => [primaryKey({ columns: [table.consumerGroup, table.eventId] }), index('inbox_processed_at_idx').on(table.processedAt)],
);
