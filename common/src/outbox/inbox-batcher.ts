import type { DbExecutor } from '../db/index.ts';
import type { EventEnvelope } from '../events/define.ts';
import { inboxTable } from './schema.ts';

/** The transaction a batch is applied in (same type as the `db` given). */
type TransactionOf<D extends DbExecutor> = Parameters<Parameters<D['transaction']>[0]>[0];

/** What {@link InboxBatcher} takes. */
export interface InboxBatcherOptions<D extends DbExecutor, E extends Pick<EventEnvelope, 'id'>, R> {
  db: D;
  /** The consumer group whose inbox records the events. */
  group: string;
  /**
   * Applies the events of one batch that the group had not processed yet, through `tx`, and returns
   * one result per event, in order. Every event of a batch has its own key (see `keyOf`).
   */
  apply: (tx: TransactionOf<D>, envelopes: E[]) => Promise<R[]>;
  /** The aggregate an event changes: one batch holds at most one event per key. */
  keyOf: (envelope: E) => string;
  /** Events per transaction at most. Default 64. */
  maxBatch?: number;
  /** Told the size of every batch committed (a metric). */
  onBatch?: (size: number) => void;
}

/** What {@link InboxBatcher.process} resolves to: `processed` false for an event the group had already processed. */
export type InboxOutcome<R> = { processed: true; result: R } | { processed: false };

interface Waiting<E, R> {
  envelope: E;
  resolve: (outcome: InboxOutcome<R>) => void;
  reject: (error: unknown) => void;
}

/**
 * The inbox of `processOnce` with group commit: the events a consumer hands in while a transaction
 * runs are applied together in the next one, which records them all in the inbox (`on conflict do
 * nothing`) and applies only those that are new. An event handed in when nothing runs starts a
 * transaction at once, so nothing waits for a batch to fill; with a consumer handling many events
 * at a time, a transaction and its fixed statements are paid once per batch instead of per event.
 *
 * Each event's promise settles when its batch has committed (or rolled back), so the consumer
 * acknowledges nothing that is not durable. When a batch of several fails, its events are applied
 * again one per transaction, so one event that cannot be applied fails alone (its delivery retries
 * or dead-letters it) instead of taking its batch with it.
 */
export class InboxBatcher<D extends DbExecutor, E extends Pick<EventEnvelope, 'id'>, R> {
  private readonly waiting: Waiting<E, R>[] = [];
  private running = false;
  private readonly maxBatch: number;

  constructor(private readonly options: InboxBatcherOptions<D, E, R>) {
    this.maxBatch = Math.max(1, options.maxBatch ?? 64);
  }

  /** Events waiting for a transaction. */
  get queued(): number {
    return this.waiting.length;
  }

  /** Applies `envelope` at most once for the group; settles when its transaction has committed. */
  process(envelope: E): Promise<InboxOutcome<R>> {
    return new Promise((resolve, reject) => {
      this.waiting.push({ envelope, resolve, reject });
      if (!this.running) void this.drain();
    });
  }

  private async drain(): Promise<void> {
    this.running = true;
    try {
      while (this.waiting.length > 0) {
        const batch = this.nextBatch();
        try {
          const outcomes = await this.commit(batch.map((entry) => entry.envelope));
          batch.forEach((entry, index) => entry.resolve(outcomes[index]!));
        } catch (error) {
          if (batch.length === 1) batch[0]!.reject(error);
          else await this.oneByOne(batch);
        }
      }
    } finally {
      this.running = false;
    }
  }

  /** The oldest waiting events, at most `maxBatch` and one per key; the others wait for the next batch, in order. */
  private nextBatch(): Waiting<E, R>[] {
    const keys = new Set<string>();
    const batch: Waiting<E, R>[] = [];
    const rest: Waiting<E, R>[] = [];
    for (const entry of this.waiting) {
      const key = this.options.keyOf(entry.envelope);
      if (batch.length < this.maxBatch && !keys.has(key)) {
        keys.add(key);
        batch.push(entry);
      } else {
        rest.push(entry);
      }
    }
    this.waiting.splice(0, this.waiting.length, ...rest);
    return batch;
  }

  private async oneByOne(batch: Waiting<E, R>[]): Promise<void> {
    for (const entry of batch) {
      try {
        entry.resolve((await this.commit([entry.envelope]))[0]!);
      } catch (error) {
        entry.reject(error);
      }
    }
  }

  private async commit(envelopes: E[]): Promise<InboxOutcome<R>[]> {
    const outcomes = await this.options.db.transaction(async (tx) => {
      const inserted = await (tx as DbExecutor)
        .insert(inboxTable)
        .values(envelopes.map((envelope) => ({ consumerGroup: this.options.group, eventId: envelope.id })))
        .onConflictDoNothing()
        .returning({ eventId: inboxTable.eventId });
      const fresh = new Set(inserted.map((row) => row.eventId));
      const toApply = envelopes.filter((envelope) => fresh.has(envelope.id));
      const results = toApply.length > 0 ? await this.options.apply(tx as TransactionOf<D>, toApply) : [];
      if (results.length !== toApply.length) throw new Error(`apply returned ${results.length} results for ${toApply.length} events`);
      const byId = new Map(toApply.map((envelope, index) => [envelope.id, results[index]!]));
      return envelopes.map((envelope): InboxOutcome<R> => (byId.has(envelope.id) ? { processed: true, result: byId.get(envelope.id)! } : { processed: false }));
    });
    this.options.onBatch?.(envelopes.length);
    return outcomes;
  }
}

