import { z } from 'zod';
import { ProviderHttp, providerRejection, unexpectedAnswer, type CircuitStateName, type ProviderClientOptions } from './provider-http.ts';

/** A charge to make. */
export interface ChargeRequest {
  /**
   * Makes the charge safe to retry: the provider charges at most once per key and answers a retry
   * with the first answer. Derive it from the business operation (e.g. the order id), never random.
   */
  idempotencyKey: string;
  /** Amount in cents, an integer above 0. */
  amountCents: number;
  currency: 'EUR';
  /** The paying customer (a UUID). */
  customerId: string;
  /** What the payment is for (e.g. the order id); the provider can be searched by it. */
  reference: string;
  description?: string;
  /** Cancels the call (the caller's deadline); the abort reason is rethrown. */
  signal?: AbortSignal;
}

/** What a charge came to. A decline is a result, not an error. */
export type ChargeResult =
  | { status: 'succeeded'; paymentId: string }
  | {
      status: 'declined';
      /** The provider's record of the declined payment, when it kept one. */
      paymentId?: string;
      /** Why, e.g. `card_declined`, `amount_over_limit`. */
      declineCode: string;
    };

const PaymentBody = z.looseObject({ id: z.string().min(1), status: z.string(), declineCode: z.string().optional() });
const DeclineBody = z.looseObject({
  error: z.looseObject({ code: z.string(), details: z.looseObject({ declineCode: z.string().optional() }).optional() }),
  payment: PaymentBody.optional(),
});

/**
 * Typed client of the payments provider (Stripe-like `POST /v1/payments`). Classification:
 * - 2xx `succeeded` → `{ status: 'succeeded' }`; 402 (or 2xx `declined`) → `{ status: 'declined' }`;
 * - any other 4xx → `PermanentError` code `provider.rejected` (408 and 429 excepted);
 * - 5xx, 408, 429, timeout, network error → `ProviderUnavailableError` `provider.unavailable` (retryable);
 * - open circuit → `ProviderUnavailableError` `provider.circuit_open` (retryable).
 *
 * ```ts
 * const payments = new PaymentsClient({ baseUrl: config.PAYMENTS_URL, logger });
 * const result = await payments.charge({ idempotencyKey: order.orderId, amountCents, currency: 'EUR', customerId, reference: order.orderId, signal: ctx.signal });
 * ```
 */
export class PaymentsClient {
  private readonly http: ProviderHttp;

  constructor(options: ProviderClientOptions) {
    this.http = new ProviderHttp('payments', options);
  }

  /** The circuit breaker's state. */
  get circuitState(): CircuitStateName {
    return this.http.circuitState;
  }

  /**
   * Charges the customer once per idempotency key.
   * @throws PermanentError (`provider.rejected`, `provider.bad_response`) when retrying cannot help.
   * @throws ProviderUnavailableError (`provider.unavailable`, `provider.circuit_open`) when a retry later may succeed.
   */
  async charge(request: ChargeRequest): Promise<ChargeResult> {
    const { idempotencyKey, signal, ...payment } = request;
    const answer = await this.http.post('/v1/payments', payment, { idempotencyKey, ...(signal ? { signal } : {}) });

    if (answer.status >= 200 && answer.status < 300) {
      const parsed = PaymentBody.safeParse(answer.body);
      if (!parsed.success) throw unexpectedAnswer('payments', answer, 'no payment id and status');
      const { id, status, declineCode } = parsed.data;
      if (status === 'succeeded') {
        this.http.record('succeeded');
        return { status: 'succeeded', paymentId: id };
      }
      if (status === 'declined') {
        this.http.record('declined');
        return { status: 'declined', paymentId: id, declineCode: declineCode ?? 'declined' };
      }
      throw unexpectedAnswer('payments', answer, `unknown status ${status}`);
    }

    if (answer.status === 402) {
      this.http.record('declined');
      const parsed = DeclineBody.safeParse(answer.body);
      const payment = parsed.data?.payment;
      const declineCode = payment?.declineCode ?? parsed.data?.error.details?.declineCode ?? parsed.data?.error.code ?? 'declined';
      return payment ? { status: 'declined', paymentId: payment.id, declineCode } : { status: 'declined', declineCode };
    }

    this.http.record('rejected');
    throw providerRejection('payments', answer);
  }
}
