import { lt, sql } from 'drizzle-orm';
import type { DbExecutor } from '../db/index.ts';
import type { EventEnvelope } from '../events/define.ts';
import { inboxTable } from './schema.ts';

/** The transaction handed to a {@link processOnce} handler (same type as the `db` given). */
type TransactionOf<D extends DbExecutor> = Parameters<Parameters<D['transaction']>[0]>[0];

/**
 * Processes an event at most once per consumer group: in one transaction, records
 * `(group, envelope.id)` in the inbox (`on conflict do nothing`) and, only when that row is new,
 * runs `handler(tx)`. Write the handler's effects through `tx`, so they commit together with the
 * inbox row.
 *
 * - A redelivered event (same group and id) is skipped: `{ processed: false }`, handler not run.
 * - A handler that throws rolls the inbox row back too, and the error propagates, so the event can
 *   be processed on its next delivery.
 * - Concurrent deliveries of one event on a server: the second waits for the first's transaction
 *   (unique key), then skips it (or processes it, if the first rolled back).
 */
export async function processOnce<D extends DbExecutor>(
  db: D,
  group: string,
  envelope: Pick<EventEnvelope, 'id'>,
  handler: (tx: TransactionOf<D>) => Promise<unknown>,
): Promise<{ processed: boolean }> {
  return db.transaction(async (tx) => {
    const inserted = await tx
      .insert(inboxTable)
      .values({ consumerGroup: group, eventId: envelope.id })
      .onConflictDoNothing()
      .returning({ eventId: inboxTable.eventId });
    if (inserted.length === 0) return { processed: false };
    await handler(tx as TransactionOf<D>);
    return { processed: true };
  });
}

/**
 * Deletes inbox rows processed more than `olderThanMs` ago (of every group); returns how many.
 * Keep them at least as long as an event can be redelivered (the stream's retention, default 7 days).
 */
export async function inboxCleanup(db: DbExecutor, olderThanMs: number): Promise<number> {
  const deleted = await db
    .delete(inboxTable)
    .where(lt(inboxTable.processedAt, sql`clock_timestamp() - ${olderThanMs} * interval '1 millisecond'`))
    .returning({ eventId: inboxTable.eventId });
  return deleted.length;
}
