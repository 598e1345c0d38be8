import type { EventSubscriber, Subscription } from '@civildiy/common/events';
import { FEED_EVENTS, type FeedProjection, type ProjectionOutcome } from './feed-projection.ts';

/** The live consumer group of feed-service on both topics it reads. */
export const CONSUMER_GROUP = 'feed-service';

/** The topics the feed is built from. */
export const FEED_TOPICS = [...new Set(FEED_EVENTS.map((event) => event.topic))];

/** What {@link subscribeToFeedEvents} takes. */
export interface FeedSubscriptionOptions {
  subscriber: EventSubscriber;
  projection: FeedProjection;
  /** Default: {@link CONSUMER_GROUP} (a rebuild reads under a group of its own). */
  group?: string;
  /** Events projected in parallel (one post or profile at a time still). Default: 16. */
  concurrency?: number;
  /** Told what each event did (metrics, rebuild progress), with the event's `occurredAt`. */
  onOutcome?: (eventType: string, outcome: ProjectionOutcome, occurredAt: string) => void;
}

/**
 * Consumes `post.created`, `post.updated`, `post.deleted` and `profile.updated` into the feed read
 * model. The projection is idempotent and version-guarded, so no inbox is needed: a redelivered
 * or reordered event cannot change the outcome.
 */
export function subscribeToFeedEvents(options: FeedSubscriptionOptions): Subscription {
  return options.subscriber.subscribe({
    group: options.group ?? CONSUMER_GROUP,
    events: FEED_EVENTS,
    concurrency: options.concurrency ?? 16,
    handle: async (envelope) => {
      const outcome = await options.projection.apply(envelope);
      options.onOutcome?.(envelope.type, outcome, envelope.occurredAt);
    },
  });
}
