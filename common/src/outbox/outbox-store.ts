import { and, asc, eq, getTableColumns, gt, inArray, isNotNull, isNull, lt, lte, notExists, notInArray, sql, type Column, type SQL } from 'drizzle-orm';
import { alias } from 'drizzle-orm/pg-core';
import type { DbExecutor } from '../db/index.ts';
import { newId } from '../ids/index.ts';
import { outboxTable, type OutboxRow } from './schema.ts';

/** Rows one relay claimed in one statement, reserved for it until the lease ends. */
export interface ClaimedRows {
  /** Identifies this claim; outcomes are recorded only while a row still carries it. */
  leaseId: string;
  /** The claimed rows in outbox order (oldest first). */
  rows: OutboxRow[];
}

/** How a claimed row ended in one batch. */
export type RowOutcome =
  | { kind: 'sent'; row: OutboxRow }
  /** A transient failure: tried again after `delayMs`. */
  | { kind: 'retry'; row: OutboxRow; error: string; delayMs: number }
  /** It can never be delivered: marked failed, kept for an operator. */
  | { kind: 'failed'; row: OutboxRow; error: string }
  /** Not tried in this batch (its key's earlier row failed, or the lease had too little time left). */
  | { kind: 'released'; row: OutboxRow };

const o = outboxTable;
const earlier = alias(outboxTable, 'earlier');

/** A row neither delivered nor marked failed. */
const pending = (table: { sentAt: Column; failedAt: Column }): SQL => and(isNull(table.sentAt), isNull(table.failedAt))!;

/** `earlier` is a pending row of the same destination and key as `later`, written before it. */
function pendingBefore(later: { destination: unknown; key: unknown; createdAt: unknown; id: unknown }): SQL {
  return and(
    pending(earlier),
    sql`${earlier.destination} = ${later.destination}`,
    sql`${earlier.key} = ${later.key}`,
    sql`(${earlier.createdAt}, ${earlier.id}) < (${later.createdAt}, ${later.id})`,
  )!;
}

const millis = (ms: number) => sql`${ms} * interval '1 millisecond'`;

/**
 * The outbox table as the relays use it: claim rows with a lease, record their outcomes, count and
 * purge them. Rows are claimed in one short statement and outcomes recorded in one short transaction
 * afterwards, so no transaction is open while a relay talks to the broker. Leases are computed with
 * the database's clock, so relays on several machines agree on them.
 *
 * Per-key order: a row is claimed only when every earlier pending row of its key is claimed with
 * it. A pending row whose `available_at` is in the future (leased by a relay, or waiting out a
 * backoff) therefore holds back the rest of its key, in this process and in every other one.
 */
export class OutboxStore {
  constructor(private readonly db: DbExecutor) {}

  /**
   * Claims up to `limit` available rows for `leaseMs`: oldest first, skipping rows another relay is
   * claiming at this moment (`FOR UPDATE SKIP LOCKED`) and rows whose key has an earlier pending
   * row that is not claimed with them.
   */
  async claim(limit: number, leaseMs: number): Promise<ClaimedRows> {
    const leaseId = newId();
    const candidates = this.db.$with('candidates').as(
      this.db
        .select({ id: o.id, destination: o.destination, key: o.key, createdAt: o.createdAt })
        .from(o)
        .where(
          and(
            pending(o),
            lte(o.availableAt, sql`now()`),
            // Behind a leased or backing-off row of its key: not even locked, so one stuck key cannot fill the batch.
            notExists(this.db.select({ one: sql`1` }).from(earlier).where(and(pendingBefore(o), gt(earlier.availableAt, sql`now()`)))),
          ),
        )
        .orderBy(asc(o.createdAt), asc(o.id))
        .limit(limit)
        .for('update', { skipLocked: true }),
    );
    // A candidate whose key has an earlier pending row outside the candidates (being claimed by another relay right now) waits.
    const claimable = this.db
      .select({ id: candidates.id })
      .from(candidates)
      .where(notExists(this.db.select({ one: sql`1` }).from(earlier).where(and(pendingBefore(candidates), notInArray(earlier.id, this.db.select({ id: candidates.id }).from(candidates))))));
    const claimed = await this.db
      .with(candidates)
      .update(o)
      .set({ availableAt: sql`now() + ${millis(leaseMs)}`, leaseId })
      .where(inArray(o.id, claimable))
      .returning({
        ...getTableColumns(o),
        // Microseconds, fixed width: `created_at` comes back as a Date (milliseconds), too coarse to order rows of one transaction.
        position: sql<string>`to_char(${o.createdAt} at time zone 'UTC', 'YYYYMMDDHH24MISSUS')`,
      });
    claimed.sort((a, b) => (a.position === b.position ? compare(a.id, b.id) : compare(a.position, b.position)));
    return { leaseId, rows: claimed.map(({ position: _position, ...row }) => row) };
  }

  /**
   * Records the outcome of every row of a claim in one transaction. A retry or a failure is only
   * recorded while the row still carries `leaseId` (a relay whose lease ran out must not overwrite
   * the state set by the relay that took the row over); a delivered row is marked sent in any case.
   */
  async settle(leaseId: string, outcomes: readonly RowOutcome[]): Promise<void> {
    if (outcomes.length === 0) return;
    const sent = outcomes.filter((outcome) => outcome.kind === 'sent').map((outcome) => outcome.row.id);
    const released = outcomes.filter((outcome) => outcome.kind === 'released').map((outcome) => outcome.row.id);
    const ours = (id: string) => and(eq(o.id, id), eq(o.leaseId, leaseId), isNull(o.sentAt));
    await this.db.transaction(async (tx) => {
      if (sent.length > 0) await tx.update(o).set({ sentAt: sql`clock_timestamp()`, leaseId: null }).where(and(inArray(o.id, sent), isNull(o.sentAt)));
      if (released.length > 0) {
        await tx
          .update(o)
          .set({ availableAt: sql`now()`, leaseId: null })
          .where(and(inArray(o.id, released), eq(o.leaseId, leaseId)));
      }
      for (const outcome of outcomes) {
        if (outcome.kind === 'retry') {
          await tx
            .update(o)
            .set({
              attempts: sql`${o.attempts} + 1`,
              lastError: outcome.error,
              availableAt: sql`clock_timestamp() + ${millis(outcome.delayMs)}`,
              leaseId: null,
            })
            .where(ours(outcome.row.id));
        } else if (outcome.kind === 'failed') {
          await tx
            .update(o)
            .set({ attempts: sql`${o.attempts} + 1`, lastError: outcome.error, failedAt: sql`clock_timestamp()`, leaseId: null })
            .where(ours(outcome.row.id));
        }
      }
    });
  }

  /**
   * Makes every row waiting out a backoff available now (leased rows keep their lease); returns
   * how many. For when the broker is reachable again: rows that failed while it was away need not
   * wait for the rest of their backoff.
   */
  async retryWaitingNow(): Promise<number> {
    const updated = await this.db
      .update(o)
      .set({ availableAt: sql`now()` })
      .where(and(pending(o), isNull(o.leaseId), gt(o.availableAt, sql`now()`)))
      .returning({ id: o.id });
    return updated.length;
  }

  /** Rows not delivered yet (`pending`, leased ones included) and rows marked failed (`failed`). */
  async counts(): Promise<{ pending: number; failed: number }> {
    const [row] = await this.db
      .select({
        pending: sql<number>`count(*) filter (where ${o.failedAt} is null)`.mapWith(Number),
        failed: sql<number>`count(*) filter (where ${o.failedAt} is not null)`.mapWith(Number),
      })
      .from(o)
      .where(isNull(o.sentAt));
    return { pending: row?.pending ?? 0, failed: row?.failed ?? 0 };
  }

  /** Deletes rows delivered more than `olderThanMs` ago; returns how many. */
  async deleteSent(olderThanMs: number): Promise<number> {
    const deleted = await this.db
      .delete(o)
      .where(and(isNotNull(o.sentAt), lt(o.sentAt, sql`clock_timestamp() - ${millis(olderThanMs)}`)))
      .returning({ id: o.id });
    return deleted.length;
  }
}

function compare(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

