import type { Collection, UpdateFilter } from 'mongodb';
import type { Registry } from 'prom-client';
import { isPermanentError, newId, ValidationError, type Logger } from '@civildiy/common';
import { EventEnvelope, type EnvelopePublisher } from '@civildiy/common/events';
import { outboxMetrics, RelayLoop, type OutboxMetrics, type RelayPassResult } from '@civildiy/common/outbox';
import type { Closable } from '@civildiy/common/runtime';
import { mongoOperation } from './mongo-unavailable.ts';
import type { FailedEvent, MongoPostDocument } from './post-document.ts';

/** Options of {@link MongoOutboxRelay}. */
export interface MongoOutboxRelayOptions {
  /** The posts collection whose documents' `pendingEvents` the store writes. */
  collection: Collection<MongoPostDocument>;
  /** Where the events go (the event bus). */
  publisher: EnvelopePublisher;
  /** Failed publishes (warn), events that can never be published and failed passes (error) are logged here. */
  logger: Logger;
  /** How often posts with pending events are looked for without a {@link MongoOutboxRelay.wake}, in ms. Default 1,000. */
  pollIntervalMs?: number;
  /** Posts taken per batch (their events are published concurrently across posts, in order within one). Default 100. */
  batchSize?: number;
  /**
   * How long a batch's posts stay reserved for this relay, in ms: another relay (another process of
   * the service) takes them only once it has passed, so a relay that died leaves them to the others.
   * A write to a post makes it due at once again (at-least-once allows the second publish). Must be
   * longer than `deliveryTimeoutMs`. Default 30,000.
   */
  leaseMs?: number;
  /** How long one publish may take before it counts as failed (retried after backoff), in ms. Default 5,000. */
  deliveryTimeoutMs?: number;
  /** Delay before a post whose publish failed is tried again: `baseMs · 2^(failures-1)`, at most `maxMs`. Default 1,000 and 60,000 ms. */
  backoff?: { baseMs?: number; maxMs?: number };
  /** Where the outbox metrics are registered (shared with the Postgres relay's). Default: prom-client's global registry. */
  registry?: Registry;
}

/** Why an event can never be published as it is. */
class UndeliverableEventError extends Error {
  constructor(
    message: string,
    readonly code: string,
  ) {
    super(message);
  }
}

/** What happened to one post of a batch. */
interface PostOutcome {
  published: number;
  failed: number;
  /** Set when a publish failed and will be retried: after this many ms. */
  retryInMs?: number;
}

/** What one batch did: its posts' outcomes added up, and how many posts it reserved. */
interface BatchOutcome extends PostOutcome {
  claimed: number;
}

/** The projection of a claimed post: what publishing and settling it needs. */
type ClaimedPost = Pick<MongoPostDocument, '_id' | 'pendingEvents' | 'deletedAt' | 'publishAttempts'>;

function errorText(error: unknown): string {
  return (error instanceof Error ? error.message : String(error)).slice(0, 2_000);
}

/**
 * Publishes the events the posts store keeps in each post document (`pendingEvents`), then pulls
 * them from the document: the relay of the Mongo store's outbox, run as a background part of
 * posts-service (the Postgres store's outbox goes through the runtime's `OutboxRelay` instead).
 *
 * - Due posts (`publishAfter <= now`, oldest first) are reserved in batches with a lease, published
 *   with no database operation open, and settled one update per post.
 * - One post's events go out in order, one after another; different posts concurrently. A publish
 *   that fails stops its post (the later events wait behind it) with exponential backoff, counted in
 *   `publishAttempts`; retries never stop. {@link retryWaitingNow} cuts the backoff short when the
 *   broker is back.
 * - An event that can never be published (not an envelope, or a `PermanentError` from the broker)
 *   moves to the post's `failedEvents`, is logged at error and counted in `civildiy_outbox_failed`;
 *   it no longer holds back the post's later events. Nothing is dropped.
 * - At least once: an event is pulled only after the broker took it, so a crash (or a publish that
 *   timed out and landed anyway) publishes it again, with the same envelope id, which consumers'
 *   inboxes deduplicate.
 * - A tombstone whose events are all published gets `purgeAt` (unless some event failed for good),
 *   and MongoDB's TTL index removes it.
 */
export class MongoOutboxRelay implements Closable {
  private readonly collection: Collection<MongoPostDocument>;
  private readonly publisher: EnvelopePublisher;
  private readonly logger: Logger;
  private readonly pollIntervalMs: number;
  private readonly batchSize: number;
  private readonly leaseMs: number;
  private readonly deliveryTimeoutMs: number;
  private readonly backoffBaseMs: number;
  private readonly backoffMaxMs: number;
  private readonly metrics: OutboxMetrics;
  private readonly loop: RelayLoop;
  private removeCountSource: (() => void) | undefined;

  constructor(options: MongoOutboxRelayOptions) {
    this.collection = options.collection;
    this.publisher = options.publisher;
    this.logger = options.logger;
    this.pollIntervalMs = options.pollIntervalMs ?? 1_000;
    this.batchSize = options.batchSize ?? 100;
    this.leaseMs = options.leaseMs ?? 30_000;
    this.deliveryTimeoutMs = options.deliveryTimeoutMs ?? 5_000;
    if (!(this.deliveryTimeoutMs > 0 && this.deliveryTimeoutMs < this.leaseMs)) {
      throw new TypeError(`deliveryTimeoutMs (${this.deliveryTimeoutMs}) must be positive and shorter than leaseMs (${this.leaseMs})`);
    }
    this.backoffBaseMs = options.backoff?.baseMs ?? 1_000;
    this.backoffMaxMs = options.backoff?.maxMs ?? 60_000;
    this.metrics = outboxMetrics(options.registry);
    this.loop = new RelayLoop({ name: 'mongo outbox relay', pass: () => this.pass(), pollIntervalMs: this.pollIntervalMs, logger: this.logger });
  }

  /** Starts publishing: a pass at once (events left by a previous process), then every `pollIntervalMs` and on {@link wake}. */
  start(): void {
    this.removeCountSource ??= this.metrics.addCountSource(() => this.counts());
    this.loop.start();
  }

  /**
   * Stops polling and waits for the batch in progress (each publish bounded by `deliveryTimeoutMs`).
   * Events not yet published stay in their posts for the next start or another relay.
   */
  async stop(): Promise<void> {
    this.removeCountSource?.();
    this.removeCountSource = undefined;
    await this.loop.stop();
  }

  /** {@link stop}, as the runtime closes a background part (the batch in progress ends within `deliveryTimeoutMs`). */
  close(_options?: { timeoutMs: number }): Promise<void> {
    return this.stop();
  }

  /**
   * Publishes now instead of at the next poll; call after a write that added events (the store's
   * `onEventsWritten`). Wakes during a pass are coalesced into one more pass after it. Ignored when
   * stopped. Returns at once: the pass runs in the relay's own context, not in the caller's.
   */
  wake(): void {
    this.loop.wake();
  }

  /**
   * Makes the posts waiting out a backoff due now and wakes the relay; resolves with how many
   * posts. Call when the broker is reachable again. Posts leased by a relay are left alone.
   */
  async retryWaitingNow(): Promise<number> {
    const now = new Date();
    const result = await mongoOperation(() =>
      this.collection.updateMany({ publishAfter: { $gt: now }, leaseId: { $exists: false } }, { $set: { publishAfter: now } }),
    );
    if (result.modifiedCount > 0) this.wake();
    return result.modifiedCount;
  }

  /**
   * One publishing pass (also usable without {@link start}, e.g. in a test or a script): publishes
   * the due posts' events batch by batch until none is left or a publish fails in a way worth
   * retrying. Passes of one relay never overlap.
   */
  publishPending(): Promise<RelayPassResult> {
    return this.loop.runOnce();
  }

  /** Events waiting in posts (`civildiy_outbox_pending`) and events that failed for good (`civildiy_outbox_failed`). */
  async counts(): Promise<{ pending: number; failed: number }> {
    // Each match is served by a sparse index (publish_after, failed_events): a scrape reads only the posts concerned.
    const sum = async (match: Record<string, unknown>, field: 'pendingEvents' | 'failedEvents') => {
      const [row] = await this.collection.aggregate<{ n: number }>([{ $match: match }, { $group: { _id: null, n: { $sum: { $size: `$${field}` } } } }]).toArray();
      return row?.n ?? 0;
    };
    const [pending, failed] = await Promise.all([
      sum({ publishAfter: { $exists: true } }, 'pendingEvents'),
      sum({ 'failedEvents.failedAt': { $exists: true } }, 'failedEvents'),
    ]);
    return { pending, failed };
  }

  private async pass(): Promise<BatchOutcome> {
    const total: BatchOutcome = { claimed: 0, published: 0, failed: 0 };
    for (;;) {
      const batch = await this.deliverBatch();
      total.claimed += batch.claimed;
      total.published += batch.published;
      total.failed += batch.failed;
      if (batch.retryInMs !== undefined) return { ...total, retryInMs: batch.retryInMs };
      // Nothing left, nothing done (only posts released for lack of lease time, or settled with nothing to publish), or asked to stop.
      if (batch.claimed === 0 || batch.published + batch.failed === 0 || this.loop.stopping) return total;
    }
  }

  /** Reserves up to `batchSize` due posts, publishes their events and settles each post. */
  private async deliverBatch(): Promise<BatchOutcome> {
    const claimedAt = Date.now();
    const now = new Date(claimedAt);
    const leaseId = newId();
    const due = await mongoOperation(() =>
      this.collection.find({ publishAfter: { $lte: now } }, { projection: { _id: 1 }, sort: { publishAfter: 1 }, limit: this.batchSize }).toArray(),
    );
    if (due.length === 0) return { claimed: 0, published: 0, failed: 0 };
    const ids = due.map((post) => post._id);
    // Only posts still due are taken: another relay may have reserved some since the find.
    await mongoOperation(() =>
      this.collection.updateMany({ _id: { $in: ids }, publishAfter: { $lte: now } }, { $set: { publishAfter: new Date(claimedAt + this.leaseMs), leaseId } }),
    );
    const claimed = await mongoOperation(() =>
      this.collection
        .find<ClaimedPost>({ _id: { $in: ids }, leaseId }, { projection: { pendingEvents: 1, deletedAt: 1, publishAttempts: 1 } })
        .toArray(),
    );
    // A publish starts only while it can end before the lease does (counted from before the reservation).
    const lastStart = claimedAt + this.leaseMs - this.deliveryTimeoutMs;
    const outcomes = await Promise.all(claimed.map((post) => this.deliverPost(post, leaseId, lastStart)));
    const result: BatchOutcome = { claimed: claimed.length, published: 0, failed: 0 };
    for (const outcome of outcomes) {
      result.published += outcome.published;
      result.failed += outcome.failed;
      if (outcome.retryInMs !== undefined) result.retryInMs = Math.min(result.retryInMs ?? Number.POSITIVE_INFINITY, outcome.retryInMs);
    }
    return result;
  }

  /** Publishes one post's events in order and records the outcome on the post. */
  private async deliverPost(post: ClaimedPost, leaseId: string, lastStart: number): Promise<PostOutcome> {
    const events: unknown[] = Array.isArray(post.pendingEvents) ? post.pendingEvents : [];
    const published: unknown[] = [];
    const failed: FailedEvent[] = [];
    let retry = false;
    let released = false;
    for (const event of events) {
      if (Date.now() > lastStart) {
        released = true;
        break;
      }
      try {
        await this.publish(event);
        this.metrics.published.inc({ kind: 'event', outcome: 'sent' });
        published.push(event);
      } catch (error) {
        this.metrics.published.inc({ kind: 'event', outcome: 'failed' });
        const where = { postId: post._id, eventId: (event as { id?: unknown } | null)?.id, type: (event as { type?: unknown } | null)?.type };
        if (error instanceof UndeliverableEventError) {
          this.logger.error({ err: error, ...where, code: error.code }, 'a post event can never be published as it is: kept in the post’s failedEvents');
          failed.push({ event, code: error.code, error: errorText(error), failedAt: new Date() });
          continue;
        }
        const attempts = (post.publishAttempts ?? 0) + 1;
        this.logger.warn({ err: error, ...where, attempts, retryInMs: this.backoffMs(attempts) }, 'publishing a post event failed, will retry');
        retry = true;
        break;
      }
    }
    await this.settle(post, leaseId, { published, failed, retry, released });
    const outcome: PostOutcome = { published: published.length, failed: failed.length + (retry ? 1 : 0) };
    if (retry) outcome.retryInMs = this.backoffMs((post.publishAttempts ?? 0) + 1);
    return outcome;
  }

  /**
   * Pulls what was published (or failed for good) from the post, then either reschedules it (a
   * publish to retry, or lease time ran out) or, when nothing is left, marks it done: conditional on
   * the array being empty, so an event written meanwhile keeps the post due.
   */
  private async settle(
    post: ClaimedPost,
    leaseId: string,
    done: { published: unknown[]; failed: FailedEvent[]; retry: boolean; released: boolean },
  ): Promise<void> {
    const finished = [...done.published, ...done.failed.map((failure) => failure.event)];
    const ids = finished.map((event) => (event as { id?: unknown } | null)?.id).filter((id): id is string => typeof id === 'string');
    const withoutId = finished.filter((event) => typeof (event as { id?: unknown } | null)?.id !== 'string');
    if (finished.length > 0) {
      const update: UpdateFilter<MongoPostDocument> = { $pull: { pendingEvents: { id: { $in: ids } } } };
      if (done.failed.length > 0) update.$push = { failedEvents: { $each: done.failed } };
      await mongoOperation(() => this.collection.updateOne({ _id: post._id }, update));
      // An element that is not even an object with an id is removed by its value.
      if (withoutId.length > 0) {
        await mongoOperation(() => this.collection.updateOne({ _id: post._id }, { $pull: { pendingEvents: { $in: withoutId } } } as UpdateFilter<MongoPostDocument>));
      }
    }
    if (done.retry) {
      const attempts = (post.publishAttempts ?? 0) + 1;
      await mongoOperation(() =>
        this.collection.updateOne(
          { _id: post._id, leaseId },
          { $set: { publishAfter: new Date(Date.now() + this.backoffMs(attempts)), publishAttempts: attempts }, $unset: { leaseId: '' } },
        ),
      );
      return;
    }
    if (done.released) {
      await mongoOperation(() => this.collection.updateOne({ _id: post._id, leaseId }, { $set: { publishAfter: new Date() }, $unset: { leaseId: '' } }));
      return;
    }
    const finishedFilter = { _id: post._id, pendingEvents: { $size: 0 } };
    const unset = { publishAfter: '', publishAttempts: '', leaseId: '' } as const;
    if (!(post.deletedAt instanceof Date)) {
      await mongoOperation(() => this.collection.updateOne({ ...finishedFilter, deletedAt: null }, { $unset: unset }));
      return;
    }
    // A tombstone is purged only when nothing of it failed for good (failed events stay for an operator).
    const purged = await mongoOperation(() =>
      this.collection.updateOne({ ...finishedFilter, deletedAt: { $ne: null }, 'failedEvents.0': { $exists: false } }, { $unset: unset, $set: { purgeAt: new Date() } }),
    );
    if (purged.matchedCount === 0) {
      await mongoOperation(() => this.collection.updateOne({ ...finishedFilter, deletedAt: { $ne: null } }, { $unset: unset }));
    }
  }

  private async publish(event: unknown): Promise<void> {
    const checked = EventEnvelope.safeParse(event);
    if (!checked.success) throw new UndeliverableEventError('The stored event is not a valid event envelope', 'outbox.invalid_envelope');
    const signal = AbortSignal.timeout(this.deliveryTimeoutMs);
    try {
      await untilAborted(this.publisher.publishEnvelope(event as EventEnvelope), signal);
    } catch (error) {
      if (signal.aborted && error === signal.reason) throw new Error(`The broker did not take the event within ${this.deliveryTimeoutMs} ms`, { cause: error });
      if (isPermanentError(error) || error instanceof ValidationError) throw new UndeliverableEventError(error.message, error.code);
      throw error;
    }
  }

  private backoffMs(attempts: number): number {
    return Math.min(this.backoffMaxMs, this.backoffBaseMs * 2 ** (attempts - 1));
  }
}

/** Settles like `work`, or rejects with `signal.reason` once `signal` aborts first. */
function untilAborted<T>(work: Promise<T>, signal: AbortSignal): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const abort = () => reject(signal.reason);
    signal.addEventListener('abort', abort, { once: true });
    work.then(resolve, reject).finally(() => signal.removeEventListener('abort', abort));
  });
}
