import { z } from 'zod';
import { defineTask } from '../tasks/define.ts';

export const NotificationTemplate = z.enum(['welcome', 'order_confirmed', 'order_rejected']);
export type NotificationTemplate = z.infer<typeof NotificationTemplate>;

/** Input of `notifications.send`. */
export const SendNotification = z.object({
  /** Derived (UUIDv5) from what caused it, so a retried cause derives the same notification. */
  notificationId: z.uuid(),
  userId: z.uuid(),
  template: NotificationTemplate,
  /** Template variables (order id, total…). */
  data: z.record(z.string(), z.union([z.string(), z.number(), z.boolean()])).default({}),
});
export type SendNotification = z.infer<typeof SendNotification>;

export const NotificationDelivery = z.object({
  notificationId: z.uuid(),
  status: z.literal('delivered'),
  /** The messaging provider's message id. */
  providerMessageId: z.string(),
  channel: z.enum(['email', 'sms']),
  deliveredAt: z.iso.datetime({ offset: true }),
});
export type NotificationDelivery = z.infer<typeof NotificationDelivery>;

/** Render a template and deliver it through the messaging provider. Consumed by notification-service. */
export const sendNotification = defineTask({
  name: 'notifications.send',
  queue: 'notifications',
  input: SendNotification,
  output: NotificationDelivery,
  retry: { attempts: 6, backoff: { type: 'exponential', delayMs: 1_000 } },
  timeoutMs: 15_000,
  description: 'Renders a notification and delivers it through the messaging provider.',
});
