import { derivedId } from '@civildiy/common';
import { z } from 'zod';
import type { StoredAnswer } from './idempotency.ts';

/** Amounts above this many cents are declined with `amount_over_limit` (2 000.00 EUR). */
export const AMOUNT_LIMIT_CENTS = 200_000;

/** Customers whose id ends with this (case-insensitive) have their card declined: `…-00000000dead`. */
export const DECLINED_CUSTOMER_SUFFIX = 'dead';

export const DeclineCode = z.enum(['amount_over_limit', 'card_declined']);
export type DeclineCode = z.infer<typeof DeclineCode>;

/** Body of `POST /v1/payments`. */
export const PaymentRequest = z.object({
  amountCents: z.number().int().positive().describe('amount in cents, an integer above 0'),
  currency: z.enum(['EUR']),
  customerId: z.uuid(),
  reference: z.string().trim().min(1).max(200).describe('what the payment is for, e.g. an order id'),
  description: z.string().max(1_000).optional(),
});
export type PaymentRequest = z.infer<typeof PaymentRequest>;

/** A payment the provider recorded, succeeded or declined. */
export const Payment = z.object({
  id: z.string().describe('`pay_` + 32 hex digits, derived from the idempotency key'),
  status: z.enum(['succeeded', 'declined']),
  amountCents: z.number().int(),
  currency: z.enum(['EUR']),
  customerId: z.uuid(),
  reference: z.string(),
  description: z.string().optional(),
  declineCode: DeclineCode.optional(),
  createdAt: z.iso.datetime(),
});
export type Payment = z.infer<typeof Payment>;

/** Body of a 402 decline (Stripe-like: an error plus the declined payment's record). */
export const DeclinedPayment = z.object({
  error: z.object({
    code: z.literal('payment_declined'),
    message: z.string(),
    details: z.object({ declineCode: DeclineCode }),
  }),
  payment: Payment,
});

/** What a payment call can come to. */
export type PaymentOutcome = 'succeeded' | 'declined';

/**
 * The documented decline rule, checked in this order:
 * 1. `amountCents > 200000` → `amount_over_limit`;
 * 2. `customerId` ending in `dead` (e.g. `…-8000-00000000dead`) → `card_declined`;
 * otherwise the payment succeeds.
 */
export function declineCodeFor(request: PaymentRequest): DeclineCode | undefined {
  if (request.amountCents > AMOUNT_LIMIT_CENTS) return 'amount_over_limit';
  if (request.customerId.toLowerCase().endsWith(DECLINED_CUSTOMER_SUFFIX)) return 'card_declined';
  return undefined;
}

const DECLINE_MESSAGES: Record<DeclineCode, string> = {
  amount_over_limit: `The amount is over the limit of ${AMOUNT_LIMIT_CENTS} cents`,
  card_declined: 'The card was declined',
};

/** Every payment the provider made or declined, in memory. */
export class PaymentLedger {
  private readonly payments = new Map<string, Payment>();
  private charges = 0;
  private declines = 0;

  /**
   * Charges (or declines) once; the idempotency layer makes sure this runs once per key.
   * Succeeded: 200 with the payment. Declined: 402 with {@link DeclinedPayment}.
   */
  charge(request: PaymentRequest, idempotencyKey: string, now = new Date()): StoredAnswer<PaymentOutcome> {
    const declineCode = declineCodeFor(request);
    const payment: Payment = {
      id: `pay_${derivedId('mock-payment', idempotencyKey).replaceAll('-', '')}`,
      status: declineCode ? 'declined' : 'succeeded',
      amountCents: request.amountCents,
      currency: request.currency,
      customerId: request.customerId,
      reference: request.reference,
      ...(request.description === undefined ? {} : { description: request.description }),
      ...(declineCode ? { declineCode } : {}),
      createdAt: now.toISOString(),
    };
    this.payments.set(payment.id, payment);
    if (!declineCode) {
      this.charges += 1;
      return { statusCode: 200, body: payment, outcome: 'succeeded' };
    }
    this.declines += 1;
    return {
      statusCode: 402,
      body: { error: { code: 'payment_declined', message: DECLINE_MESSAGES[declineCode], details: { declineCode } }, payment },
      outcome: 'declined',
    };
  }

  get(id: string): Payment | undefined {
    return this.payments.get(id);
  }

  /** Newest first, optionally only one reference's or one customer's. */
  list(filter: { reference?: string; customerId?: string; limit: number }): Payment[] {
    return [...this.payments.values()]
      .reverse()
      .filter((p) => (filter.reference === undefined || p.reference === filter.reference) && (filter.customerId === undefined || p.customerId === filter.customerId))
      .slice(0, filter.limit);
  }

  /** Succeeded charges and declines since start or the last reset. */
  counts(): { chargesCreated: number; declines: number } {
    return { chargesCreated: this.charges, declines: this.declines };
  }

  clear(): void {
    this.payments.clear();
    this.charges = 0;
    this.declines = 0;
  }
}
