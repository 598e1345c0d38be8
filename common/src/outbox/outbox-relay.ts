import { and, asc, count, eq, exists, gt, inArray, isNotNull, isNull, lt, lte, notInArray, sql } from 'drizzle-orm';
import { alias } from 'drizzle-orm/pg-core';
import type { Registry } from 'prom-client';
import type { DbExecutor } from '../db/index.ts';
import type { EventEnvelope, EventPublisher } from '../events/define.ts';
import type { Logger } from '../logging/index.ts';
import { findTask, type TaskEnqueuer } from '../tasks/define.ts';
import { inboxCleanup } from './inbox.ts';
import { outboxMetrics, type OutboxMetrics } from './outbox-metrics.ts';
import type { OutboxTaskPayload } from './outbox-writer.ts';
import { outboxTable, type OutboxRow } from './schema.ts';

/** Options of {@link OutboxRelay}. */
export interface OutboxRelayOptions {
  /** The service's database (the one whose `outbox` table the service writes). */
  db: DbExecutor;
  /** Where event rows go (the event bus). */
  publisher: EventPublisher;
  /** Where task rows go (the task client). Without it a task row fails its delivery (kept, with the error). Default: none. */
  tasks?: TaskEnqueuer;
  /** Failed deliveries (warn), failed passes (error) and cleanups (debug) are logged here. */
  logger: Logger;
  /** How often pending rows are looked for without a {@link OutboxRelay.wake}, in ms. Default 1,000. */
  pollIntervalMs?: number;
  /** Rows locked and delivered per transaction. Default 100. */
  batchSize?: number;
  /**
   * Delay before a failed row is tried again: `baseMs · 2^(attempts-1)`, at most `maxMs`.
   * Default base 1,000 ms, max 60,000 ms. Retries never stop: a row is kept until delivered.
   */
  backoff?: { baseMs?: number; maxMs?: number };
  /** Delivered rows are deleted once older than this, in ms. Default 24 h. */
  retainSentMs?: number;
  /** How often delivered rows past `retainSentMs` (and inbox rows past `retainInboxMs`) are deleted, in ms. Default 60,000. */
  cleanupIntervalMs?: number;
  /**
   * Inbox rows (events this service processed, see `processOnce`) are deleted once older than this,
   * in ms; `0` keeps them. Keep them longer than an event can be redelivered: the streams keep
   * events 7 days, so the default is 8 days.
   */
  retainInboxMs?: number;
  /** Where the metrics are registered (reused when already there). Default: prom-client's global registry. */
  registry?: Registry;
}

/** What one {@link OutboxRelay.publishPending} pass did. */
export interface RelayPassResult {
  /** Rows delivered and marked sent. */
  published: number;
  /**
   * Rows whose delivery failed. A failure ends the pass (after the batch's other keys are
   * delivered); the failed row's later rows of the same key wait for it.
   */
  failed: number;
}

const DAY_MS = 24 * 60 * 60 * 1000;

/**
 * Delivers the transactional outbox: publishes event rows through the {@link EventPublisher} and
 * enqueues task rows through the {@link TaskEnqueuer}, oldest first, then marks them sent.
 *
 * - Rows are locked with `FOR UPDATE SKIP LOCKED`, so several relays (processes of one service on a
 *   Postgres server) never deliver the same row at the same time; a row whose key has an older
 *   undelivered row (failed and waiting, or locked by another relay) waits for it: per-key order.
 * - Rows of different keys in one batch are delivered concurrently, rows of one key in order.
 * - A failed delivery records `attempts` and `last_error`, postpones the row with exponential
 *   backoff and ends the pass. Rows are never dropped (an unknown task name is such a failure).
 * - Delivery is at least once: a row committed but not delivered (crash, stop) is delivered by the
 *   next relay start; a crash between delivery and marking it sent delivers it again with the same
 *   envelope id / idempotency key, which consumers (inbox) and the task queue deduplicate.
 */
export class OutboxRelay {
  private readonly db: DbExecutor;
  private readonly publisher: EventPublisher;
  private readonly tasks: TaskEnqueuer | undefined;
  private readonly logger: Logger;
  private readonly pollIntervalMs: number;
  private readonly batchSize: number;
  private readonly backoffBaseMs: number;
  private readonly backoffMaxMs: number;
  private readonly retainSentMs: number;
  private readonly cleanupIntervalMs: number;
  private readonly retainInboxMs: number;
  private readonly metrics: OutboxMetrics;

  private running = false;
  private stopping = false;
  private timer: NodeJS.Timeout | undefined;
  private active: Promise<void> | undefined;
  private wakeRequested = false;
  private passes: Promise<unknown> = Promise.resolve();
  private lastCleanup = 0;
  private removePendingSource: (() => void) | undefined;

  constructor(options: OutboxRelayOptions) {
    this.db = options.db;
    this.publisher = options.publisher;
    this.tasks = options.tasks;
    this.logger = options.logger;
    this.pollIntervalMs = options.pollIntervalMs ?? 1_000;
    this.batchSize = options.batchSize ?? 100;
    this.backoffBaseMs = options.backoff?.baseMs ?? 1_000;
    this.backoffMaxMs = options.backoff?.maxMs ?? 60_000;
    this.retainSentMs = options.retainSentMs ?? DAY_MS;
    this.cleanupIntervalMs = options.cleanupIntervalMs ?? 60_000;
    this.retainInboxMs = options.retainInboxMs ?? 8 * DAY_MS;
    this.metrics = outboxMetrics(options.registry);
  }

  /** Starts delivering: a pass at once (rows left by a previous process), then every `pollIntervalMs` and on {@link wake}. */
  start(): void {
    if (this.running) return;
    this.running = true;
    this.stopping = false;
    this.removePendingSource = this.metrics.addPendingSource(() => this.pendingCount());
    this.tick();
  }

  /**
   * Stops polling and waits for the batch in progress (the pass ends after it). Rows not yet
   * delivered stay pending for the next start.
   */
  async stop(): Promise<void> {
    this.running = false;
    this.stopping = true;
    clearTimeout(this.timer);
    this.timer = undefined;
    this.removePendingSource?.();
    this.removePendingSource = undefined;
    await this.active;
    await this.passes.catch(() => undefined);
    this.stopping = false;
  }

  /**
   * Delivers now instead of at the next poll; call after committing a transaction that wrote to the
   * outbox. Wakes during a pass are coalesced into one more pass after it. Ignored when stopped.
   */
  wake(): void {
    this.tick();
  }

  /**
   * One delivery pass (also usable without {@link start}, e.g. in a script): deletes old delivered
   * rows when due, then delivers available rows batch by batch until none is left or one fails.
   * Passes of one relay never overlap.
   */
  publishPending(): Promise<RelayPassResult> {
    const pass = this.passes.then(() => this.pass());
    this.passes = pass.catch(() => undefined);
    return pass.then(({ published, failed }) => ({ published, failed }));
  }

  /** Deletes delivered rows older than `retainSentMs` (and inbox rows older than `retainInboxMs`); returns how many outbox rows. */
  async purgeSent(): Promise<number> {
    const cutoff = sql`clock_timestamp() - ${this.retainSentMs} * interval '1 millisecond'`;
    const deleted = await this.db
      .delete(outboxTable)
      .where(and(isNotNull(outboxTable.sentAt), lt(outboxTable.sentAt, cutoff)))
      .returning({ id: outboxTable.id });
    this.lastCleanup = Date.now();
    if (deleted.length > 0) this.logger.debug({ deleted: deleted.length }, 'outbox: deleted delivered rows');
    if (this.retainInboxMs > 0) {
      const forgotten = await inboxCleanup(this.db, this.retainInboxMs);
      if (forgotten > 0) this.logger.debug({ deleted: forgotten }, 'inbox: deleted rows past their retention');
    }
    return deleted.length;
  }

  private tick(): void {
    if (!this.running) return;
    if (this.active) {
      this.wakeRequested = true;
      return;
    }
    clearTimeout(this.timer);
    this.timer = undefined;
    this.wakeRequested = false;
    this.active = this.passes
      .then(() => this.pass())
      .then(
        (result) => result.retryInMs,
        (error: unknown) => {
          this.logger.error({ err: error }, 'outbox relay pass failed');
          return undefined;
        },
      )
      .then((retryInMs) => {
        this.active = undefined;
        if (!this.running) return;
        if (this.wakeRequested) return this.tick();
        this.timer = setTimeout(() => this.tick(), Math.min(this.pollIntervalMs, retryInMs ?? Number.POSITIVE_INFINITY));
        this.timer.unref();
      });
    this.passes = this.active;
  }

  private async pass(): Promise<RelayPassResult & { retryInMs?: number }> {
    if (Date.now() - this.lastCleanup >= this.cleanupIntervalMs) await this.purgeSent();
    let published = 0;
    for (;;) {
      const batch = await this.deliverBatch();
      published += batch.published;
      if (batch.failed > 0) return { published, failed: batch.failed, retryInMs: batch.retryInMs };
      if (batch.locked < this.batchSize || batch.published === 0 || this.stopping) return { published, failed: 0 };
    }
  }

  private async deliverBatch(): Promise<{ locked: number; published: number; failed: number; retryInMs?: number }> {
    return this.db.transaction(async (tx) => {
      const o = outboxTable;
      const earlier = alias(outboxTable, 'earlier');
      const sameKeyEarlier = and(
        isNull(earlier.sentAt),
        eq(earlier.destination, o.destination),
        eq(earlier.key, o.key),
        sql`(${earlier.createdAt}, ${earlier.id}) < (${o.createdAt}, ${o.id})`,
      );
      // Rows behind a same-key row that is waiting out its backoff are not even locked, so a failing
      // key cannot fill the batch and starve the other keys.
      const rows = await tx
        .select()
        .from(o)
        .where(
          and(
            isNull(o.sentAt),
            lte(o.availableAt, sql`now()`),
            sql`not exists (${tx.select({ one: sql`1` }).from(earlier).where(and(sameKeyEarlier, gt(earlier.availableAt, sql`now()`)))})`,
          ),
        )
        .orderBy(asc(o.createdAt), asc(o.id))
        .limit(this.batchSize)
        .for('update', { skipLocked: true });
      if (rows.length === 0) return { locked: 0, published: 0, failed: 0 };

      // A row whose key has an older pending row outside this batch (locked by another relay) waits.
      const ids = rows.map((row) => row.id);
      const blocked = new Set(
        (
          await tx
            .select({ id: o.id })
            .from(o)
            .where(and(inArray(o.id, ids), exists(tx.select({ one: sql`1` }).from(earlier).where(and(sameKeyEarlier, notInArray(earlier.id, ids))))))
        ).map((row) => row.id),
      );

      // Keys are independent: each key's rows go out in order, different keys concurrently, so the
      // transaction (which on PGlite blocks every other query of the service) is held for about one
      // round trip to the broker instead of one per row.
      const chains = new Map<string, OutboxRow[]>();
      for (const row of rows) {
        if (blocked.has(row.id)) continue;
        const chainKey = `${row.destination}\u0000${row.key}`;
        const chain = chains.get(chainKey);
        if (chain) chain.push(row);
        else chains.set(chainKey, [row]);
      }
      const sent: string[] = [];
      const failures: { row: OutboxRow; error: unknown }[] = [];
      await Promise.all(
        [...chains.values()].map(async (chain) => {
          for (const row of chain) {
            try {
              await this.deliver(row);
              sent.push(row.id);
              this.metrics.published.inc({ kind: row.kind, outcome: 'sent' });
            } catch (error) {
              // The rest of this key waits behind the failed row (per-key order); other keys go on.
              failures.push({ row, error });
              this.metrics.published.inc({ kind: row.kind, outcome: 'failed' });
              return;
            }
          }
        }),
      );
      if (sent.length > 0) await tx.update(o).set({ sentAt: sql`clock_timestamp()` }).where(inArray(o.id, sent));
      if (failures.length === 0) return { locked: rows.length, published: sent.length, failed: 0 };

      let retryInMs = Number.POSITIVE_INFINITY;
      for (const failure of failures) {
        const attempts = failure.row.attempts + 1;
        const delayMs = Math.min(this.backoffMaxMs, this.backoffBaseMs * 2 ** (attempts - 1));
        retryInMs = Math.min(retryInMs, delayMs);
        const message = failure.error instanceof Error ? failure.error.message : String(failure.error);
        await tx
          .update(o)
          .set({ attempts, lastError: message.slice(0, 2_000), availableAt: sql`clock_timestamp() + ${delayMs} * interval '1 millisecond'` })
          .where(eq(o.id, failure.row.id));
        this.logger.warn(
          { err: failure.error, outboxId: failure.row.id, kind: failure.row.kind, name: failure.row.name, attempts, retryInMs: delayMs },
          'outbox delivery failed, will retry',
        );
      }
      return { locked: rows.length, published: sent.length, failed: failures.length, retryInMs };
    });
  }

  private async deliver(row: OutboxRow): Promise<void> {
    if (row.kind === 'event') {
      await this.publisher.publishEnvelope(row.payload as EventEnvelope);
      return;
    }
    if (!this.tasks) throw new Error(`This relay has no task queue, so task "${row.name}" cannot be enqueued`);
    const task = findTask(row.name);
    if (!task) throw new Error(`Unknown task "${row.name}": its contract is not loaded in this process`);
    const { input, options, context } = row.payload as OutboxTaskPayload;
    const enqueueOptions = { ...options, context };
    // The delay counts from the write, not from this (possibly much later) enqueue.
    if (options.delayMs !== undefined) enqueueOptions.delayMs = Math.max(0, options.delayMs - (Date.now() - row.createdAt.getTime()));
    await this.tasks.enqueue(task, input, enqueueOptions);
  }

  private async pendingCount(): Promise<number> {
    const [row] = await this.db.select({ pending: count() }).from(outboxTable).where(isNull(outboxTable.sentAt));
    return row?.pending ?? 0;
  }
}
