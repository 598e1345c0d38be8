import { and, desc, eq, getTableColumns, sql } from 'drizzle-orm';
import { ValidationError, isUuid, newId } from '@civildiy/common';
import type { NotificationDelivery, SendNotification, UserRegistered } from '@civildiy/common/contracts';
import type { Database, DbTransaction } from '@civildiy/common/db';
import { contacts, deliveryAttempts, notifications } from './db/schema.ts';
import type * as schema from './db/schema.ts';
import { renderTemplate } from './templates.ts';

type Db = Database<typeof schema>;

/** The provider call the delivery needs (the common `MessagingClient` has it). */
export interface MessageSender {
  send(message: { idempotencyKey: string; channel: 'email' | 'sms'; to: string; subject?: string; body: string; signal?: AbortSignal }): Promise<{
    id: string;
    deliveredAt: string;
  }>;
}

/** Raised when a notification is for a user whose `user.registered` has not arrived yet (retried). */
export class ContactUnknownError extends Error {
  readonly code = 'notifications.contact_unknown';
  constructor(userId: string) {
    super(`No contact known yet for user ${userId}`);
    this.name = 'ContactUnknownError';
  }
}

/** Keeps this service's copy of a user's contact details (newest registration data wins). */
export async function rememberContact(tx: DbTransaction<typeof schema>, user: UserRegistered): Promise<void> {
  await tx
    .insert(contacts)
    .values({ userId: user.userId, email: user.email, username: user.username })
    .onConflictDoUpdate({ target: contacts.userId, set: { email: user.email, username: user.username, updatedAt: new Date() } });
}

/**
 * Delivers a notification: renders it, records it, sends it through the messaging provider with the
 * notification id as idempotency key and records the attempt. A notification already delivered is
 * answered from the record without calling the provider again.
 */
export async function deliverNotification(
  db: Db,
  sender: MessageSender,
  request: SendNotification,
  attempt: { number: number; signal?: AbortSignal },
): Promise<NotificationDelivery> {
  const [contact] = await db.select().from(contacts).where(eq(contacts.userId, request.userId));
  if (!contact) throw new ContactUnknownError(request.userId);
  const message = renderTemplate(request.template, request.data, contact.username);

  await db
    .insert(notifications)
    .values({
      id: request.notificationId,
      userId: request.userId,
      template: request.template,
      channel: 'email',
      recipient: contact.email,
      subject: message.subject,
      body: message.body,
    })
    .onConflictDoNothing({ target: notifications.id });
  const [record] = await db.select().from(notifications).where(eq(notifications.id, request.notificationId));
  if (record?.status === 'delivered' && record.providerMessageId && record.deliveredAt) {
    return { notificationId: record.id, status: 'delivered', providerMessageId: record.providerMessageId, channel: 'email', deliveredAt: record.deliveredAt.toISOString() };
  }

  try {
    const sent = await sender.send({
      idempotencyKey: request.notificationId,
      channel: 'email',
      to: record?.recipient ?? contact.email,
      subject: record?.subject ?? message.subject,
      body: record?.body ?? message.body,
      ...(attempt.signal ? { signal: attempt.signal } : {}),
    });
    const deliveredAt = new Date(sent.deliveredAt);
    await db.transaction(async (tx) => {
      await tx
        .update(notifications)
        .set({ status: 'delivered', providerMessageId: sent.id, deliveredAt, attempts: sql`${notifications.attempts} + 1`, lastError: null })
        .where(eq(notifications.id, request.notificationId));
      await tx.insert(deliveryAttempts).values({ id: newId(), notificationId: request.notificationId, attempt: attempt.number, outcome: 'delivered' });
    });
    return { notificationId: request.notificationId, status: 'delivered', providerMessageId: sent.id, channel: 'email', deliveredAt: deliveredAt.toISOString() };
  } catch (error) {
    const reason = error instanceof Error ? `${(error as { code?: string }).code ?? error.name}: ${error.message}` : String(error);
    await db.transaction(async (tx) => {
      await tx
        .update(notifications)
        .set({ attempts: sql`${notifications.attempts} + 1`, lastError: reason })
        .where(eq(notifications.id, request.notificationId));
      await tx.insert(deliveryAttempts).values({ id: newId(), notificationId: request.notificationId, attempt: attempt.number, outcome: 'failed', error: reason });
    });
    throw error;
  }
}

/** A notification as the API shows it. */
export interface NotificationView {
  id: string;
  template: string;
  channel: string;
  recipient: string;
  subject: string;
  body: string;
  status: 'pending' | 'delivered';
  attempts: number;
  createdAt: string;
  deliveredAt: string | null;
}

/**
 * `created_at` as UTC ISO text with Postgres's full microsecond precision: a cursor cut to
 * JavaScript's milliseconds would skip the rows of the same millisecond after the page boundary.
 */
const createdAtText = sql<string>`to_char(${notifications.createdAt} at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')`;

/** The only time format a cursor carries (what `createdAtText` gives; milliseconds accepted too). */
const CURSOR_TIME = /^((?!0000)\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3})(\d{3})?Z$/;

function encodeCursor(createdAt: string, id: string): string {
  return Buffer.from(JSON.stringify([createdAt, id])).toString('base64url');
}

function decodeCursor(cursor: string): { createdAt: string; id: string } {
  try {
    const [createdAt, id] = JSON.parse(Buffer.from(cursor, 'base64url').toString()) as unknown[];
    // Strict: anything else (even what Date.parse accepts) could fail the cast in SQL (a 500).
    const millis = typeof createdAt === 'string' ? CURSOR_TIME.exec(createdAt)?.[1] : undefined;
    if (typeof createdAt === 'string' && millis && new Date(`${millis}Z`).toISOString() === `${millis}Z` && typeof id === 'string' && isUuid(id)) {
      return { createdAt, id };
    }
  } catch {
    // fall through
  }
  throw new ValidationError('The cursor is not one this API gave out', 'notifications.invalid_cursor');
}

/** A page of a user's notifications, newest first; `cursor` is the `nextCursor` of the previous page. */
export async function listNotifications(db: Db, userId: string, page: { cursor?: string; limit: number }): Promise<{ items: NotificationView[]; nextCursor: string | null }> {
  // Ids are derived (UUIDv5), not time-ordered: page by (created_at, id).
  let condition = eq(notifications.userId, userId);
  if (page.cursor) {
    const after = decodeCursor(page.cursor);
    condition = and(condition, sql`(${notifications.createdAt}, ${notifications.id}) < (${after.createdAt}::timestamptz, ${after.id}::uuid)`)!;
  }
  const rows = await db
    .select({ ...getTableColumns(notifications), cursorAt: createdAtText })
    .from(notifications)
    .where(condition)
    .orderBy(desc(notifications.createdAt), desc(notifications.id))
    .limit(page.limit + 1);
  const pageRows = rows.slice(0, page.limit);
  const items = pageRows.map((row) => ({
    id: row.id,
    template: row.template,
    channel: row.channel,
    recipient: row.recipient,
    subject: row.subject,
    body: row.body,
    status: row.status,
    attempts: row.attempts,
    createdAt: row.createdAt.toISOString(),
    deliveredAt: row.deliveredAt?.toISOString() ?? null,
  }));
  const last = pageRows[pageRows.length - 1];
  return { items, nextCursor: rows.length > page.limit && last ? encodeCursor(last.cursorAt, last.id) : null };
}
