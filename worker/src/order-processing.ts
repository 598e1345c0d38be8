import { derivedId, type Logger } from '@civildiy/common';
import { orderProcessed, type OrderOutcome, type OrderPayload } from '@civildiy/common/contracts';
import type { EnvelopePublisher } from '@civildiy/common/events';
import { createEnvelope } from '@civildiy/common/events';

/** The provider call the order flow needs (the common `PaymentsClient` has it). */
export interface PaymentGateway {
  charge(request: {
    idempotencyKey: string;
    amountCents: number;
    currency: 'EUR';
    customerId: string;
    reference: string;
    signal?: AbortSignal;
  }): Promise<{ status: 'succeeded'; paymentId: string } | { status: 'declined'; paymentId?: string; declineCode: string }>;
}

/** The order's total from its price snapshots. */
export function orderTotalCents(order: OrderPayload): number {
  return order.lines.reduce((sum, line) => sum + line.quantity * line.unitPriceCents, 0);
}

/**
 * Prices and pays for an order, then publishes `order.processed`. The order id is the payment's
 * idempotency key, so a retried or re-run task charges at most once; the event's id is derived from
 * the order id, so a re-publish is the same event (consumers' inboxes drop the repeat). A declined
 * payment is an outcome (`rejected`), not an error; provider errors propagate and the task retries.
 */
export async function processOrder(
  deps: { payments: PaymentGateway; events: EnvelopePublisher; logger: Logger },
  order: OrderPayload,
  signal?: AbortSignal,
): Promise<OrderOutcome> {
  const totalCents = orderTotalCents(order);
  const payment = await deps.payments.charge({
    idempotencyKey: order.orderId,
    amountCents: totalCents,
    currency: order.currency,
    customerId: order.customerId,
    reference: order.orderId,
    ...(signal ? { signal } : {}),
  });
  const outcome: OrderOutcome =
    payment.status === 'succeeded'
      ? { orderId: order.orderId, customerId: order.customerId, status: 'confirmed', totalCents, currency: order.currency, paymentId: payment.paymentId, processedAt: new Date().toISOString() }
      : {
          orderId: order.orderId,
          customerId: order.customerId,
          status: 'rejected',
          totalCents,
          currency: order.currency,
          reason: payment.declineCode,
          ...(payment.paymentId ? { paymentId: payment.paymentId } : {}),
          processedAt: new Date().toISOString(),
        };
  await deps.events.publishEnvelope(createEnvelope(orderProcessed, outcome, { id: derivedId('event', orderProcessed.type, order.orderId) }));
  deps.logger.info({ orderId: order.orderId, status: outcome.status, totalCents }, 'order processed');
  return outcome;
}
