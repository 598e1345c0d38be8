import { derivedId } from '@civildiy/common';
import { z } from 'zod';
import type { StoredAnswer } from './idempotency.ts';

/** Email to this domain is rejected with 422 `recipient_rejected`. */
export const BOUNCING_EMAIL_DOMAIN = 'bounce.example';

/** SMS to numbers starting with this (an unassigned country code) is rejected with 422 `recipient_rejected`. */
export const UNREACHABLE_SMS_PREFIX = '+999';

const E164 = z.string().regex(/^\+[1-9]\d{6,14}$/, 'an E.164 phone number such as +4915112345678');

/** Body of `POST /v1/messages`: an email (address, optional subject) or an SMS (E.164 number). */
export const MessageRequest = z.discriminatedUnion('channel', [
  z.object({
    channel: z.literal('email'),
    to: z.email(),
    subject: z.string().trim().min(1).max(200).optional(),
    body: z.string().min(1).max(20_000),
  }),
  z.object({
    channel: z.literal('sms'),
    to: E164,
    body: z.string().min(1).max(1_600),
  }),
]);
export type MessageRequest = z.infer<typeof MessageRequest>;

/** A delivered message, as the inspection endpoints show it. */
export const Message = z.object({
  id: z.string().describe('`msg_` + 32 hex digits, derived from the idempotency key'),
  status: z.literal('delivered'),
  channel: z.enum(['email', 'sms']),
  to: z.string(),
  subject: z.string().optional(),
  body: z.string(),
  deliveredAt: z.iso.datetime(),
});
export type Message = z.infer<typeof Message>;

/** The answer to `POST /v1/messages`. */
export const MessageReceipt = Message.pick({ id: true, status: true, channel: true, to: true, deliveredAt: true });
export type MessageReceipt = z.infer<typeof MessageReceipt>;

/** What a messaging call can come to. */
export type MessageOutcome = 'delivered' | 'rejected';

/**
 * The documented recipient rule: an email address at `bounce.example` (any case) or an SMS number
 * starting `+999` is rejected permanently; every other recipient gets the message.
 */
export function rejectionReasonFor(request: MessageRequest): string | undefined {
  if (request.channel === 'email' && request.to.toLowerCase().endsWith(`@${BOUNCING_EMAIL_DOMAIN}`)) return 'mailbox_unavailable';
  if (request.channel === 'sms' && request.to.startsWith(UNREACHABLE_SMS_PREFIX)) return 'unreachable_number';
  return undefined;
}

/** Every message the provider delivered, in memory. */
export class MessageLog {
  private readonly messages = new Map<string, Message>();
  private rejections = 0;

  /** Delivers (200 with a {@link MessageReceipt}) or rejects (422 `recipient_rejected`); runs once per key. */
  send(request: MessageRequest, idempotencyKey: string, now = new Date()): StoredAnswer<MessageOutcome> {
    const reason = rejectionReasonFor(request);
    if (reason) {
      this.rejections += 1;
      return {
        statusCode: 422,
        body: { error: { code: 'recipient_rejected', message: 'The recipient does not accept messages', details: { to: request.to, reason } } },
        outcome: 'rejected',
      };
    }
    const message: Message = {
      id: `msg_${derivedId('mock-message', idempotencyKey).replaceAll('-', '')}`,
      status: 'delivered',
      channel: request.channel,
      to: request.to,
      ...(request.channel === 'email' && request.subject !== undefined ? { subject: request.subject } : {}),
      body: request.body,
      deliveredAt: now.toISOString(),
    };
    this.messages.set(message.id, message);
    const receipt: MessageReceipt = { id: message.id, status: message.status, channel: message.channel, to: message.to, deliveredAt: message.deliveredAt };
    return { statusCode: 200, body: receipt, outcome: 'delivered' };
  }

  get(id: string): Message | undefined {
    return this.messages.get(id);
  }

  /** Newest first, optionally only one recipient's (email compared without case). */
  list(filter: { to?: string; channel?: 'email' | 'sms'; limit: number }): Message[] {
    const to = filter.to?.toLowerCase();
    return [...this.messages.values()]
      .reverse()
      .filter((m) => (to === undefined || m.to.toLowerCase() === to) && (filter.channel === undefined || m.channel === filter.channel))
      .slice(0, filter.limit);
  }

  /** Delivered messages and rejections since start or the last reset. */
  counts(): { messagesCreated: number; rejections: number } {
    return { messagesCreated: this.messages.size, rejections: this.rejections };
  }

  clear(): void {
    this.messages.clear();
    this.rejections = 0;
  }
}
