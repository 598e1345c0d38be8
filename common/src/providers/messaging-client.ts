import { z } from 'zod';
import { ProviderHttp, errorOf, providerRejection, unexpectedAnswer, type CircuitStateName, type ProviderClientOptions } from './provider-http.ts';

/** A message to deliver. */
export interface SendMessageRequest {
  /** Makes the send safe to retry: the provider delivers at most once per key. Derive it (e.g. the notification id). */
  idempotencyKey: string;
  channel: 'email' | 'sms';
  /** An email address (email) or an E.164 number such as `+4915112345678` (sms). */
  to: string;
  /** Email only. */
  subject?: string;
  body: string;
  /** Cancels the call (the caller's deadline); the abort reason is rethrown. */
  signal?: AbortSignal;
}

/** The provider's receipt for a delivered message. */
export interface MessageReceipt {
  /** The provider's message id. */
  id: string;
  status: 'delivered';
  /** ISO 8601 time of delivery. */
  deliveredAt: string;
}

const ReceiptBody = z.looseObject({ id: z.string().min(1), status: z.literal('delivered'), deliveredAt: z.string() });

/**
 * Typed client of the messaging provider (`POST /v1/messages`, email and SMS). Classification:
 * - 2xx → {@link MessageReceipt};
 * - 422 `recipient_rejected` → `PermanentError` code `provider.recipient_rejected`;
 * - any other 4xx → `PermanentError` code `provider.rejected` (408 and 429 excepted);
 * - 5xx, 408, 429, timeout, network error → `ProviderUnavailableError` `provider.unavailable` (retryable);
 * - open circuit → `ProviderUnavailableError` `provider.circuit_open` (retryable).
 */
export class MessagingClient {
  private readonly http: ProviderHttp;

  constructor(options: ProviderClientOptions) {
    this.http = new ProviderHttp('messaging', options);
  }

  /** The circuit breaker's state. */
  get circuitState(): CircuitStateName {
    return this.http.circuitState;
  }

  /**
   * Delivers a message once per idempotency key.
   * @throws PermanentError (`provider.recipient_rejected`, `provider.rejected`, `provider.bad_response`) when retrying cannot help.
   * @throws ProviderUnavailableError (`provider.unavailable`, `provider.circuit_open`) when a retry later may succeed.
   */
  async send(request: SendMessageRequest): Promise<MessageReceipt> {
    const { idempotencyKey, signal, ...message } = request;
    const answer = await this.http.post('/v1/messages', message, { idempotencyKey, ...(signal ? { signal } : {}) });

    if (answer.status >= 200 && answer.status < 300) {
      const parsed = ReceiptBody.safeParse(answer.body);
      if (!parsed.success) throw unexpectedAnswer('messaging', answer, 'no delivered receipt');
      this.http.record('delivered');
      return { id: parsed.data.id, status: parsed.data.status, deliveredAt: parsed.data.deliveredAt };
    }

    this.http.record('rejected');
    if (answer.status === 422 && errorOf(answer)?.code === 'recipient_rejected') {
      throw providerRejection('messaging', answer, 'provider.recipient_rejected');
    }
    throw providerRejection('messaging', answer);
  }
}
