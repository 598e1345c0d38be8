import { postCreated, postDeleted, postUpdated } from '@civildiy/common/contracts';
import { isEvent, type EnvelopeOf, type EventSubscriber, type Subscription } from '@civildiy/common/events';
import { InboxBatcher } from '@civildiy/common/outbox';
import { applyPostChanges, type PostChange, type PostEventOutcome } from './post-events.ts';
import type { SearchDb } from './search-state.ts';

/** The consumer group of search-service on `posts-events`. */
export const CONSUMER_GROUP = 'search-service';

/** The post events the index is built from. */
export const POST_EVENTS = [postCreated, postUpdated, postDeleted];

type PostEnvelope = EnvelopeOf<(typeof POST_EVENTS)[number]>;

/** What {@link subscribeToPostEvents} takes. */
export interface PostEventsSubscriptionOptions {
  subscriber: EventSubscriber;
  db: SearchDb;
  /** `SEARCH_TEXT_MAX_CHARS`. */
  textMaxChars: number;
  /** Events handled at a time (one post at a time still): they are applied together, one transaction per batch. Default 64. */
  concurrency?: number;
  /** Called after an event queued index work (wakes the batcher). */
  onQueued: () => void;
  /** Told the size of every transaction of events (a metric). */
  onBatch?: (size: number) => void;
}

const changeOf = (envelope: PostEnvelope): PostChange =>
  isEvent(postDeleted, envelope) ? { kind: 'delete', deleted: envelope.data } : { kind: 'version', post: envelope.data };

/**
 * Consumes `post.created`, `post.updated` and `post.deleted` into the buffer table, once per event
 * (inbox) and tolerant of order: an older version than the one held changes nothing, and a delete
 * leaves a tombstone that keeps a late create or update out. The events in hand are applied
 * together ({@link InboxBatcher}): one transaction per batch, each event acknowledged after its
 * batch committed.
 */
export function subscribeToPostEvents(options: PostEventsSubscriptionOptions): Subscription {
  const concurrency = options.concurrency ?? 64;
  const inbox = new InboxBatcher({
    db: options.db,
    group: CONSUMER_GROUP,
    maxBatch: concurrency,
    keyOf: (envelope: PostEnvelope) => envelope.data.postId,
    apply: (tx, envelopes) => applyPostChanges(tx, envelopes.map(changeOf), { textMaxChars: options.textMaxChars }),
    ...(options.onBatch ? { onBatch: options.onBatch } : {}),
  });
  return options.subscriber.subscribe({
    group: CONSUMER_GROUP,
    events: POST_EVENTS,
    concurrency,
    handle: async (envelope, ctx) => {
      const outcome = await inbox.process(envelope);
      const applied: PostEventOutcome = outcome.processed ? outcome.result : 'stale';
      if (applied === 'queued') options.onQueued();
      ctx.logger.debug({ postId: envelope.key, version: envelope.data.version, processed: outcome.processed, outcome: applied }, 'post event applied');
    },
  });
}
