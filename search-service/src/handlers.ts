import { postCreated, postDeleted, postUpdated } from '@civildiy/common/contracts';
import { isEvent, type EventSubscriber, type Subscription } from '@civildiy/common/events';
import { processOnce } from '@civildiy/common/outbox';
import { queuePostVersion, removePost, type PostEventOutcome } from './post-events.ts';
import type { SearchDb } from './search-state.ts';

/** The consumer group of search-service on `posts-events`. */
export const CONSUMER_GROUP = 'search-service';

/** The post events the index is built from. */
export const POST_EVENTS = [postCreated, postUpdated, postDeleted];

/** What {@link subscribeToPostEvents} takes. */
export interface PostEventsSubscriptionOptions {
  subscriber: EventSubscriber;
  db: SearchDb;
  /** `SEARCH_TEXT_MAX_CHARS`. */
  textMaxChars: number;
  /** Events applied in parallel (one post at a time still). Default 16. */
  concurrency?: number;
  /** Called after an event queued index work (wakes the batcher). */
  onQueued: () => void;
}

/**
 * Consumes `post.created`, `post.updated` and `post.deleted` into the buffer table, once per event
 * (inbox) and tolerant of order: an older version than the one held changes nothing, and a delete
 * leaves a tombstone that keeps a late create or update out.
 */
export function subscribeToPostEvents(options: PostEventsSubscriptionOptions): Subscription {
  return options.subscriber.subscribe({
    group: CONSUMER_GROUP,
    events: POST_EVENTS,
    concurrency: options.concurrency ?? 16,
    handle: async (envelope, ctx) => {
      let outcome = 'stale' as PostEventOutcome;
      const { processed } = await processOnce(options.db, CONSUMER_GROUP, envelope, async (tx) => {
        outcome = isEvent(postDeleted, envelope)
          ? await removePost(tx, envelope.data)
          : await queuePostVersion(tx, envelope.data, { textMaxChars: options.textMaxChars });
      });
      if (outcome === 'queued') options.onQueued();
      ctx.logger.debug({ postId: envelope.key, version: envelope.data.version, processed, outcome }, 'post event applied');
    },
  });
}
