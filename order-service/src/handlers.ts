import type { Logger } from '@civildiy/common';
import { orderProcessed } from '@civildiy/common/contracts';
import type { Database } from '@civildiy/common/db';
import type { EventSubscriber, Subscription } from '@civildiy/common/events';
import { processOnce } from '@civildiy/common/outbox';
import { countOrder } from './order-metrics.ts';
import { applyOutcome } from './orders.ts';
import type * as schema from './db/schema.ts';

/** The consumer group of order-service on every topic it reads. */
export const CONSUMER_GROUP = 'order-service';

/**
 * Consumes `order.processed`: marks the order confirmed or rejected and requests the customer's
 * notification, once per event (inbox) and in one transaction with the outbox row.
 */
export function subscribeToOutcomes(deps: { subscriber: EventSubscriber; db: Database<typeof schema>; logger: Logger }): Subscription {
  return deps.subscriber.subscribe({
    group: CONSUMER_GROUP,
    events: [orderProcessed],
    // Outcomes of different orders are independent (the bus keeps one order's events in sequence);
    // handling them one at a time left a backlog behind the HTTP traffic.
    concurrency: 16,
    handle: async (envelope, ctx) => {
      const outcome = orderProcessed.data.parse(envelope.data);
      let changed = false;
      const { processed } = await processOnce(deps.db, CONSUMER_GROUP, envelope, async (tx) => {
        changed = await applyOutcome(tx, outcome);
      });
      if (changed) countOrder(outcome.status);
      ctx.logger.info({ orderId: outcome.orderId, status: outcome.status, processed, changed }, 'order outcome applied');
    },
  });
}
