import { z } from 'zod';
import { defineEvent } from '../events/define.ts';
import { defineTask } from '../tasks/define.ts';

/** A catalog stock-keeping unit, e.g. `KIT-SHELF-01`. */
export const Sku = z.string().trim().min(3).max(40).regex(/^[A-Z0-9-]+$/, 'upper-case letters, digits and -');

/** One line of an order as the customer sends it. */
export const OrderLine = z.object({
  sku: Sku,
  quantity: z.number().int().min(1).max(100),
});
export type OrderLine = z.infer<typeof OrderLine>;

/** One line with the price snapshot taken when the order was accepted. */
export const PricedOrderLine = OrderLine.extend({
  name: z.string(),
  unitPriceCents: z.number().int().nonnegative(),
});
export type PricedOrderLine = z.infer<typeof PricedOrderLine>;

export const Currency = z.enum(['EUR']);

/** Input of `orders.process`. */
export const OrderPayload = z.object({
  orderId: z.uuid(),
  customerId: z.uuid(),
  currency: Currency,
  lines: z.array(PricedOrderLine).min(1),
});
export type OrderPayload = z.infer<typeof OrderPayload>;

/** Output of `orders.process`, and the data of `order.processed`. */
export const OrderOutcome = z.object({
  orderId: z.uuid(),
  customerId: z.uuid(),
  status: z.enum(['confirmed', 'rejected']),
  totalCents: z.number().int().nonnegative(),
  currency: Currency,
  /** The provider's payment id (confirmed, and declined payments the provider recorded). */
  paymentId: z.string().optional(),
  /** Why a rejected order was rejected (e.g. `card_declined`). */
  reason: z.string().optional(),
  processedAt: z.iso.datetime({ offset: true }),
});
export type OrderOutcome = z.infer<typeof OrderOutcome>;

/**
 * Price and pay for an order. Runs on the dedicated worker. A declined payment is an outcome
 * (`rejected`), not an error; a provider error or timeout is retried.
 */
export const processOrder = defineTask({
  name: 'orders.process',
  queue: 'orders',
  input: OrderPayload,
  output: OrderOutcome,
  retry: { attempts: 5, backoff: { type: 'exponential', delayMs: 500 } },
  timeoutMs: 30_000,
  description: 'Totals an order and charges it through the payments provider.',
});

/** An order was priced and paid (confirmed) or refused (rejected). Key = order id. */
export const orderProcessed = defineEvent({
  topic: 'orders-events',
  type: 'order.processed',
  version: 1,
  data: OrderOutcome,
  key: (data) => data.orderId,
  description: 'The worker finished an order.',
});
