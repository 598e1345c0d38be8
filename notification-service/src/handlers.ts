import { derivedId, type Logger } from '@civildiy/common';
import { sendNotification, userRegistered } from '@civildiy/common/contracts';
import type { Database } from '@civildiy/common/db';
import type { EventSubscriber, Subscription } from '@civildiy/common/events';
import { outbox, processOnce } from '@civildiy/common/outbox';
import type { TaskWorker } from '@civildiy/common/tasks';
import { deliverNotification, rememberContact, type MessageSender } from './notifications.ts';
import type * as schema from './db/schema.ts';

/** The consumer group of notification-service on every topic it reads. */
export const CONSUMER_GROUP = 'notification-service';

/**
 * Consumes `user.registered`: keeps the contact copy and requests the welcome message, in one
 * transaction, once per event.
 */
export function subscribeToRegistrations(deps: { subscriber: EventSubscriber; db: Database<typeof schema> }): Subscription {
  return deps.subscriber.subscribe({
    group: CONSUMER_GROUP,
    events: [userRegistered],
    concurrency: 8,
    handle: async (envelope) => {
      const user = userRegistered.data.parse(envelope.data);
      await processOnce(deps.db, CONSUMER_GROUP, envelope, async (tx) => {
        await rememberContact(tx, user);
        const notificationId = derivedId('notification', 'welcome', user.userId);
        // Keyed by the notification: a second registration event for the user adds no second task.
        await outbox.task(
          tx,
          sendNotification,
          { notificationId, userId: user.userId, template: 'welcome', data: { username: user.username } },
          { idempotencyKey: notificationId },
        );
      });
    },
  });
}

/** Runs `notifications.send` on this process's task worker. */
export function handleNotificationTasks(deps: { worker: TaskWorker; db: Database<typeof schema>; sender: MessageSender; logger: Logger }): void {
  deps.worker.handle(sendNotification, async (request, ctx) => {
    const delivery = await deliverNotification(deps.db, deps.sender, request, { number: ctx.attempt, signal: ctx.signal });
    ctx.logger.info({ notificationId: delivery.notificationId, template: request.template }, 'notification delivered');
    return delivery;
  });
}
