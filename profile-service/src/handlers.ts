import { userRegistered } from '@civildiy/common/contracts';
import type { Database } from '@civildiy/common/db';
import type { EventSubscriber, Subscription } from '@civildiy/common/events';
import { processOnce } from '@civildiy/common/outbox';
import { createProfileOnRegistration } from './profiles.ts';
import type * as schema from './db/schema.ts';

/** The consumer group of profile-service on every topic it reads. */
export const CONSUMER_GROUP = 'profile-service';

/**
 * Consumes `user.registered`: creates the user's profile and writes `profile.updated` to the outbox,
 * in one transaction, once per event (inbox) and once per user (a later event for a user with a
 * profile changes nothing).
 */
export function subscribeToRegistrations(deps: { subscriber: EventSubscriber; db: Database<typeof schema> }): Subscription {
  return deps.subscriber.subscribe({
    group: CONSUMER_GROUP,
    events: [userRegistered],
    concurrency: 8,
    handle: async (envelope, ctx) => {
      const user = userRegistered.data.parse(envelope.data);
      let created = false;
      const { processed } = await processOnce(deps.db, CONSUMER_GROUP, envelope, async (tx) => {
        created = await createProfileOnRegistration(tx, user);
      });
      ctx.logger.info({ userId: user.userId, processed, created }, 'registration handled');
    },
  });
}
