import type { Registry } from 'prom-client';
import type { DbExecutor } from '../db/index.ts';
import type { EnvelopePublisher } from '../events/define.ts';
import type { Logger } from '../logging/index.ts';
import type { TaskEnqueuer } from '../tasks/define.ts';
import { inboxCleanup } from './inbox.ts';
import { OutboxDelivery, UndeliverableRowError } from './outbox-delivery.ts';
import { OutboxFailedRows } from './outbox-failed-rows.ts';
import { OutboxStore, type RowOutcome } from './outbox-store.ts';
import { outboxMetrics, type OutboxMetrics } from './outbox-metrics.ts';
import { RelayLoop, type RelayPass, type RelayPassResult } from './relay-loop.ts';
import type { OutboxRow } from './schema.ts';

/** Options of {@link OutboxRelay}. */
export interface OutboxRelayOptions {
  /** The service's database (the one whose `outbox` table the service writes). */
  db: DbExecutor;
  /** Where event rows go (the event bus). */
  publisher: EnvelopePublisher;
  /** Where task rows go (the task client). Without it a task row fails its delivery (kept, retried, with the error). Default: none. */
  tasks?: TaskEnqueuer;
  /** Failed deliveries (warn), undeliverable rows and failed passes (error) and cleanups (debug) are logged here. */
  logger: Logger;
  /** How often pending rows are looked for without a {@link OutboxRelay.wake}, in ms. Default 1,000. */
  pollIntervalMs?: number;
  /**
   * Rows claimed per batch. Each batch costs one claim statement and one settling transaction
   * whatever its size, and its rows go to the broker together (different keys concurrently), so a
   * backlog drains faster with larger batches: 500 rows measured 9,400 rows/s to Kafka where 100
   * gave 6,200–7,800 (`npm run bench -- events`). Default 500.
   */
  batchSize?: number;
  /**
   * How long claimed rows stay reserved for this relay, in ms: no other relay delivers them
   * meanwhile, and the rows of a relay that died are delivered by another once it has passed.
   * Must be longer than `deliveryTimeoutMs`. Default 30,000.
   */
  leaseMs?: number;
  /**
   * How long one delivery (one publish or enqueue) may take before it counts as a failure, retried
   * after backoff, in ms. A broker that does not answer (down, reconnecting) costs a batch this
   * long, never a database transaction. Default 5,000.
   */
  deliveryTimeoutMs?: number;
  /**
   * Delay before a row whose delivery failed is tried again: `baseMs · 2^(attempts-1)`, at most
   * `maxMs`. Default base 1,000 ms, max 60,000 ms. Such retries never stop; only a row that can
   * never be delivered is marked failed (see {@link OutboxRelay.failed}).
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

export type { RelayPassResult } from './relay-loop.ts';

/** What one batch did. */
interface BatchResult extends RelayPass {
  claimed: number;
}

const DAY_MS = 24 * 60 * 60 * 1000;

/**
 * Delivers the transactional outbox: publishes event rows through the {@link EnvelopePublisher} and
 * enqueues task rows through the {@link TaskEnqueuer}, oldest first, then marks them sent. No
 * database transaction is open while it talks to the broker, so a broker that does not answer never
 * holds up the service's own queries (on embedded PGlite, one connection serves every query).
 *
 * - Rows are claimed with a lease in one short statement (`FOR UPDATE SKIP LOCKED`), delivered
 *   outside any transaction, each delivery bounded by `deliveryTimeoutMs`, then their outcome is
 *   recorded in one short transaction. Several relays (processes of one service on a Postgres
 *   server) never deliver the same row at the same time.
 * - Per-key order: a row is claimed only with every earlier pending row of its key, so a row never
 *   overtakes an earlier one that is waiting out its backoff or leased by another relay. Rows of
 *   one key go out in order, different keys concurrently.
 * - A failed delivery records `attempts` and `last_error`, postpones the row with exponential
 *   backoff and ends the pass; retries never stop. {@link retryWaitingNow} cuts the backoff short
 *   when the broker is back.
 * - A row that can never be delivered (unknown task, input failing the task's schema, an invalid
 *   envelope, a `PermanentError` from the broker) is marked failed, logged at error and counted in
 *   `civildiy_outbox_failed`; it no longer holds back its key. List and redrive such rows with
 *   {@link failed}. Rows are never dropped.
 * - Delivery is at least once: a row committed but not delivered (crash, stop) is delivered by the
 *   next relay; a relay that dies holding rows leaves them to the others once its lease has passed;
 *   a crash between delivery and marking the row sent, or a delivery that timed out and landed
 *   anyway, delivers it again with the same envelope id / idempotency key, which consumers (inbox)
 *   and the task queue deduplicate.
 */
export class OutboxRelay {
  /** The rows marked failed: list them, redrive one or all (the relay then delivers them again). */
  readonly failed: OutboxFailedRows;

  private readonly db: DbExecutor;
  private readonly logger: Logger;
  private readonly store: OutboxStore;
  private readonly delivery: OutboxDelivery;
  private readonly publisher: EnvelopePublisher;
  private readonly pollIntervalMs: number;
  private readonly batchSize: number;
  private readonly leaseMs: number;
  private readonly deliveryTimeoutMs: number;
  private readonly backoffBaseMs: number;
  private readonly backoffMaxMs: number;
  private readonly retainSentMs: number;
  private readonly cleanupIntervalMs: number;
  private readonly retainInboxMs: number;
  private readonly metrics: OutboxMetrics;
  private readonly loop: RelayLoop;
  private lastCleanup = 0;
  private removeCountSource: (() => void) | undefined;

  constructor(options: OutboxRelayOptions) {
    this.db = options.db;
    this.logger = options.logger;
    this.store = new OutboxStore(options.db);
    this.publisher = options.publisher;
    this.delivery = new OutboxDelivery(options.publisher, options.tasks);
    this.failed = new OutboxFailedRows(options.db, () => this.wake());
    this.pollIntervalMs = options.pollIntervalMs ?? 1_000;
    this.batchSize = options.batchSize ?? 500;
    this.leaseMs = options.leaseMs ?? 30_000;
    this.deliveryTimeoutMs = options.deliveryTimeoutMs ?? 5_000;
    if (!(this.deliveryTimeoutMs > 0 && this.deliveryTimeoutMs < this.leaseMs)) {
      throw new TypeError(`deliveryTimeoutMs (${this.deliveryTimeoutMs}) must be positive and shorter than leaseMs (${this.leaseMs})`);
    }
    this.backoffBaseMs = options.backoff?.baseMs ?? 1_000;
    this.backoffMaxMs = options.backoff?.maxMs ?? 60_000;
    this.retainSentMs = options.retainSentMs ?? DAY_MS;
    this.cleanupIntervalMs = options.cleanupIntervalMs ?? 60_000;
    this.retainInboxMs = options.retainInboxMs ?? 8 * DAY_MS;
    this.metrics = outboxMetrics(options.registry);
    this.loop = new RelayLoop({ name: 'outbox relay', pass: () => this.pass(), pollIntervalMs: this.pollIntervalMs, logger: this.logger });
  }

  /** Starts delivering: a pass at once (rows left by a previous process), then every `pollIntervalMs` and on {@link wake}. */
  start(): void {
    this.removeCountSource ??= this.metrics.addCountSource(() => this.store.counts());
    this.loop.start();
  }

  /**
   * Stops polling and waits for the batch in progress (each of its deliveries bounded by
   * `deliveryTimeoutMs`; the pass ends after it). Rows not yet delivered stay pending for the next
   * start or another relay.
   */
  async stop(): Promise<void> {
    this.removeCountSource?.();
    this.removeCountSource = undefined;
    await this.loop.stop();
  }

  /**
   * Delivers now instead of at the next poll; call after committing a transaction that wrote to the
   * outbox. Wakes during a pass are coalesced into one more pass after it. Ignored when stopped.
   * Returns at once: the pass runs in the relay's own context, not in the caller's (request).
   */
  wake(): void {
    this.loop.wake();
  }

  /**
   * Makes the rows waiting out a backoff available now and wakes the relay; resolves with how many
   * rows. Call when the broker is reachable again, so rows that failed while it was away go out at
   * once rather than after the rest of their backoff. Leased rows are left alone.
   */
  async retryWaitingNow(): Promise<number> {
    const rows = await this.store.retryWaitingNow();
    if (rows > 0) this.wake();
    return rows;
  }

  /**
   * One delivery pass (also usable without {@link start}, e.g. in a script): deletes old delivered
   * rows when due, then delivers available rows batch by batch until none is left or a delivery
   * fails in a way worth retrying. Passes of one relay never overlap.
   */
  publishPending(): Promise<RelayPassResult> {
    return this.loop.runOnce();
  }

  /** Deletes delivered rows older than `retainSentMs` (and inbox rows older than `retainInboxMs`); returns how many outbox rows. */
  async purgeSent(): Promise<number> {
    const deleted = await this.store.deleteSent(this.retainSentMs);
    this.lastCleanup = Date.now();
    if (deleted > 0) this.logger.debug({ deleted }, 'outbox: deleted delivered rows');
    if (this.retainInboxMs > 0) {
      const forgotten = await inboxCleanup(this.db, this.retainInboxMs);
      if (forgotten > 0) this.logger.debug({ deleted: forgotten }, 'inbox: deleted rows past their retention');
    }
    return deleted;
  }

  private async pass(): Promise<BatchResult> {
    if (Date.now() - this.lastCleanup >= this.cleanupIntervalMs) await this.purgeSent();
    const total: BatchResult = { claimed: 0, published: 0, failed: 0 };
    for (;;) {
      const batch = await this.deliverBatch();
      total.claimed += batch.claimed;
      total.published += batch.published;
      total.failed += batch.failed;
      if (batch.retryInMs !== undefined) return { ...total, retryInMs: batch.retryInMs };
      // Nothing left, nothing done (only rows released for lack of lease time), or asked to stop.
      if (batch.claimed === 0 || batch.published + batch.failed === 0 || this.loop.stopping) return total;
    }
  }

  private async deliverBatch(): Promise<BatchResult> {
    const claimedAt = Date.now();
    const { leaseId, rows } = await this.store.claim(this.batchSize, this.leaseMs);
    if (rows.length === 0) return { claimed: 0, published: 0, failed: 0 };
    // A delivery starts only while it can end before the lease does (measured from before the claim,
    // which is earlier than the database's lease start), so no other relay can hold the row meanwhile.
    const lastStart = claimedAt + this.leaseMs - this.deliveryTimeoutMs;

    const chains = new Map<string, OutboxRow[]>();
    for (const row of rows) {
      const chainKey = `${row.destination}\u0000${row.key}`;
      const chain = chains.get(chainKey);
      if (chain) chain.push(row);
      else chains.set(chainKey, [row]);
    }
    const outcomes = (await Promise.all([...chains.values()].map((chain) => this.deliverChain(chain, lastStart)))).flat();
    await this.store.settle(leaseId, outcomes);

    const result: BatchResult = { claimed: rows.length, published: 0, failed: 0 };
    for (const outcome of outcomes) {
      if (outcome.kind === 'sent') result.published += 1;
      if (outcome.kind === 'retry' || outcome.kind === 'failed') result.failed += 1;
      if (outcome.kind === 'retry') result.retryInMs = Math.min(result.retryInMs ?? Number.POSITIVE_INFINITY, outcome.delayMs);
    }
    return result;
  }

  /** Delivers one key's rows in order. After a failure worth retrying, the rest of the key waits (released). */
  private async deliverChain(chain: readonly OutboxRow[], lastStart: number): Promise<RowOutcome[]> {
    if (chain.length > 1 && this.publisher.keepsKeyOrder === true && chain.every((row) => row.kind === 'event')) return this.deliverChainTogether(chain, lastStart);
    const outcomes: RowOutcome[] = [];
    let blocked = false;
    for (const row of chain) {
      if (blocked || Date.now() > lastStart) {
        outcomes.push({ kind: 'released', row });
        continue;
      }
      const outcome = await this.deliverRow(row);
      outcomes.push(outcome);
      blocked = outcome.kind === 'retry';
    }
    return outcomes;
  }

  /**
   * Hands a key's event rows to a publisher that keeps their order ({@link EnvelopePublisher.keepsKeyOrder})
   * all at once, so they share a round trip. A row whose delivery failed holds back the rest: a later
   * row that failed with it is released (tried again behind it), one that landed anyway is sent.
   */
  private async deliverChainTogether(chain: readonly OutboxRow[], lastStart: number): Promise<RowOutcome[]> {
    if (Date.now() > lastStart) return chain.map((row) => ({ kind: 'released', row }));
    const outcomes = await Promise.all(chain.map((row) => this.deliverRow(row)));
    let blocked = false;
    return outcomes.map((outcome) => {
      const result: RowOutcome = blocked && outcome.kind === 'retry' ? { kind: 'released', row: outcome.row } : outcome;
      if (outcome.kind === 'retry') blocked = true;
      return result;
    });
  }

  private async deliverRow(row: OutboxRow): Promise<RowOutcome> {
    try {
      await this.delivery.deliver(row, this.deliveryTimeoutMs);
      this.metrics.published.inc({ kind: row.kind, outcome: 'sent' });
      return { kind: 'sent', row };
    } catch (error) {
      this.metrics.published.inc({ kind: row.kind, outcome: 'failed' });
      const message = (error instanceof Error ? error.message : String(error)).slice(0, 2_000);
      const where = { outboxId: row.id, kind: row.kind, name: row.name, destination: row.destination, key: row.key, attempts: row.attempts + 1 };
      if (error instanceof UndeliverableRowError) {
        this.logger.error({ err: error, ...where, code: error.code }, 'outbox row can never be delivered as it is: marked failed (redrive it once the cause is fixed)');
        return { kind: 'failed', row, error: message };
      }
      const delayMs = Math.min(this.backoffMaxMs, this.backoffBaseMs * 2 ** row.attempts);
      this.logger.warn({ err: error, ...where, retryInMs: delayMs }, 'outbox delivery failed, will retry');
      return { kind: 'retry', row, error: message, delayMs };
    }
  }
}
