import { and, asc, eq, isNotNull, isNull, sql } from 'drizzle-orm';
import type { DbExecutor } from '../db/index.ts';
import { outboxTable, type OutboxRow } from './schema.ts';

/** An outbox row marked failed: it can never be delivered as it is. */
export type FailedOutboxRow = OutboxRow & { failedAt: Date };

const o = outboxTable;
const failed = and(isNull(o.sentAt), isNotNull(o.failedAt));

/**
 * The outbox rows found undeliverable (unknown task, input failing the task's schema, a permanent
 * error from the broker), kept until an operator redrives them: the `OutboxRelay`'s counterpart of
 * the task queue's dead letters. A redriven row is pending again with its attempts reset. A failed
 * row does not hold its key back, so later rows of its key may have been delivered before it.
 */
export class OutboxFailedRows {
  constructor(
    private readonly db: DbExecutor,
    /** Called after a redrive put rows back (the relay wakes). */
    private readonly onRedriven: () => void,
  ) {}

  /** The failed rows, oldest first (at most `limit`, default 100). */
  async list({ limit = 100 }: { limit?: number } = {}): Promise<FailedOutboxRow[]> {
    const rows = await this.db.select().from(o).where(failed).orderBy(asc(o.createdAt), asc(o.id)).limit(limit);
    return rows as FailedOutboxRow[];
  }

  /** Puts one failed row back to pending; resolves `false` when no failed row has this id. */
  async redrive(id: string): Promise<boolean> {
    const moved = await this.pendingAgain(eq(o.id, id));
    return moved > 0;
  }

  /** Puts every failed row back to pending; resolves with how many. */
  async redriveAll(): Promise<number> {
    return this.pendingAgain(undefined);
  }

  private async pendingAgain(which: ReturnType<typeof eq> | undefined): Promise<number> {
    const moved = await this.db
      .update(o)
      .set({ failedAt: null, attempts: 0, availableAt: sql`now()`, leaseId: null })
      .where(which === undefined ? failed : and(failed, which))
      .returning({ id: o.id });
    if (moved.length > 0) this.onRedriven();
    return moved.length;
  }
}
