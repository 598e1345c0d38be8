import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { asc, eq } from 'drizzle-orm';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createLogger, derivedId, newId } from '@civildiy/common';
import { sendNotification, userRegistered, type SendNotification } from '@civildiy/common/contracts';
import { openDatabase, type OpenDatabase } from '@civildiy/common/db';
import { RedisStreamsEventBus, type Subscription } from '@civildiy/common/events';
import { MessagingClient } from '@civildiy/common/providers';
import { TaskClient, TaskFailedError, TaskWorker, type AttemptRecord, type DeadLetters } from '@civildiy/common/tasks';
import * as schema from '../src/db/schema.ts';
import { handleNotificationTasks, subscribeToRegistrations } from '../src/handlers.ts';
import { providerCall, startMockProviders, type MockProviders, REDIS_URL, removeRedisPrefix, uniquePrefix } from '@civildiy/common/testing';

const migrationsFolder = path.join(path.dirname(fileURLToPath(import.meta.url)), '../src/db/migrations');
const logger = createLogger({ service: 'notification-service', level: process.env.TEST_LOG_LEVEL ?? 'silent' });
const prefix = uniquePrefix('notification-delivery');
const poll = { timeout: 20_000, interval: 50 };

let providers: MockProviders;
let database: OpenDatabase<typeof schema>;
let bus: RedisStreamsEventBus;
let registrations: Subscription;
let client: TaskClient;
let worker: TaskWorker;

beforeAll(async () => {
  providers = await startMockProviders();
  database = await openDatabase({ service: 'notification-service', dataDir: 'memory://', migrationsFolder, schema });
  bus = new RedisStreamsEventBus({ connection: REDIS_URL, prefix: `${prefix}:`, logger });
  // Contacts arrive as in production: from `user.registered` (no outbox relay here, so no welcome messages).
  registrations = subscribeToRegistrations({ subscriber: bus, db: database.db });
  await registrations.ready;
  client = new TaskClient({ connection: REDIS_URL, prefix, logger });
  worker = new TaskWorker({ connection: REDIS_URL, prefix, queues: [sendNotification.queue], concurrency: 5, logger });
  handleNotificationTasks({ worker, db: database.db, sender: new MessagingClient({ baseUrl: providers.messagingUrl, timeoutMs: 5_000, logger }), logger });
  await worker.start();
});

afterEach(async () => {
  await setMessagingFaults({});
});

afterAll(async () => {
  await worker?.close();
  await client?.close();
  await registrations?.close();
  await bus?.close();
  await database?.close();
  await providers?.stop();
  await removeRedisPrefix(prefix);
});

interface ProviderMessage {
  id: string;
  to: string;
  subject?: string;
  body: string;
}

async function setMessagingFaults(faults: Record<string, number>): Promise<void> {
  await providerCall(`${providers.messagingUrl}/_admin/faults`, { method: 'PUT', body: faults });
}

async function messagesTo(email: string): Promise<ProviderMessage[]> {
  return (await providerCall<{ items: ProviderMessage[] }>(`${providers.messagingUrl}/v1/messages?to=${encodeURIComponent(email)}`)).items;
}

async function messagingStats(): Promise<{ callsReceived: number; messagesCreated: number; rejections: number }> {
  return providerCall(`${providers.messagingUrl}/_admin/stats`);
}

/** The provider's message id for an idempotency key (the mock derives it from the key). */
function providerMessageIdFor(idempotencyKey: string): string {
  return `msg_${derivedId('mock-message', idempotencyKey).replaceAll('-', '')}`;
}

/** A user whose `user.registered` this service has consumed (its contact is stored). */
async function registeredUser(domain = 'example.com') {
  const userId = newId();
  const username = `maker${userId.slice(-8)}`;
  const user = { userId, username, email: `${username}@${domain}`, registeredAt: new Date().toISOString() };
  await bus.publish(userRegistered, user);
  await expect.poll(() => contactOf(userId), poll).toBeDefined();
  return user;
}

async function contactOf(userId: string) {
  const [contact] = await database.db.select().from(schema.contacts).where(eq(schema.contacts.userId, userId));
  return contact;
}

async function notificationRow(id: string) {
  const [row] = await database.db.select().from(schema.notifications).where(eq(schema.notifications.id, id));
  return row;
}

async function attemptRows(notificationId: string) {
  return database.db
    .select()
    .from(schema.deliveryAttempts)
    .where(eq(schema.deliveryAttempts.notificationId, notificationId))
    .orderBy(asc(schema.deliveryAttempts.attempt), asc(schema.deliveryAttempts.at));
}

/** The attempt errors the task runtime recorded in the job's log. */
async function attemptLog(jobId: string): Promise<AttemptRecord[]> {
  const { logs } = await client.queue(sendNotification.queue).getJobLogs(jobId);
  return logs.map((line) => JSON.parse(line) as AttemptRecord);
}

function orderConfirmed(userId: string): SendNotification {
  const orderId = newId();
  return { notificationId: derivedId('notification', orderId, 'confirmed'), userId, template: 'order_confirmed', data: { orderId, totalCents: 4900 } };
}

describe('notifications.send through the task runtime against the real messaging provider', () => {
  it('delivers a notification once, keyed by its id at the provider, and records one attempt', async () => {
    const user = await registeredUser();
    const request = orderConfirmed(user.userId);
    const ref = await client.enqueue(sendNotification, request);
    const delivery = await ref.result({ timeoutMs: 20_000 });

    const messageId = providerMessageIdFor(request.notificationId);
    expect(delivery).toMatchObject({ notificationId: request.notificationId, status: 'delivered', channel: 'email', providerMessageId: messageId });
    const messages = await messagesTo(user.email);
    expect(messages).toHaveLength(1);
    expect(messages[0]).toMatchObject({ id: messageId, to: user.email, subject: `Your order ${String(request.data.orderId).slice(0, 8)} is confirmed` });
    expect(messages[0]!.body).toContain('€49.00');
    expect(messages[0]!.body).toContain(`Hi ${user.username}`);

    expect(await notificationRow(request.notificationId)).toMatchObject({
      userId: user.userId,
      template: 'order_confirmed',
      recipient: user.email,
      status: 'delivered',
      providerMessageId: messageId,
      attempts: 1,
      lastError: null,
      deliveredAt: new Date(delivery.deliveredAt),
    });
    const attempts = await attemptRows(request.notificationId);
    expect(attempts.map(({ attempt, outcome, error }) => ({ attempt, outcome, error }))).toEqual([{ attempt: 1, outcome: 'delivered', error: null }]);
  });

  it('when the messaging provider fails twice, the notification is delivered on attempt 3 and sent exactly once', async () => {
    const user = await registeredUser();
    await setMessagingFaults({ failNext: 2 });
    const request = orderConfirmed(user.userId);
    const ref = await client.enqueue(sendNotification, request);
    const delivery = await ref.result({ timeoutMs: 20_000 });

    expect(delivery.status).toBe('delivered');
    const attempts = await attemptRows(request.notificationId);
    expect(attempts.map(({ attempt, outcome }) => ({ attempt, outcome }))).toEqual([
      { attempt: 1, outcome: 'failed' },
      { attempt: 2, outcome: 'failed' },
      { attempt: 3, outcome: 'delivered' },
    ]);
    for (const failed of attempts.slice(0, 2)) expect(failed.error).toMatch(/^provider\.unavailable: .*503/);
    expect(attempts[2]!.error).toBeNull();
    expect(await notificationRow(request.notificationId)).toMatchObject({ status: 'delivered', attempts: 3, lastError: null });
    expect(await messagesTo(user.email)).toHaveLength(1);
    expect((await providerCall<{ failNext: number }>(`${providers.messagingUrl}/_admin/faults`)).failNext).toBe(0);
  });

  it('a recipient the provider rejects is dead-lettered after one attempt and the notification stays pending with the error', async () => {
    const user = await registeredUser('bounce.example');
    const request = orderConfirmed(user.userId);
    const ref = await client.enqueue(sendNotification, request);

    const failure = await ref.result({ timeoutMs: 20_000 }).catch((error: unknown) => error);
    expect(failure).toBeInstanceOf(TaskFailedError);
    expect(failure).toMatchObject({ code: 'provider.recipient_rejected', attemptsMade: 1 });

    const deadLetters: DeadLetters = client.deadLetters;
    const letter = await deadLetters.get(sendNotification.queue, ref.id);
    expect(letter).toMatchObject({ id: ref.id, task: 'notifications.send', input: request, attemptsMade: 1 });
    expect(letter!.attempts.map(({ attempt, code, final }) => ({ attempt, code, final }))).toEqual([
      { attempt: 1, code: 'provider.recipient_rejected', final: true },
    ]);

    const row = await notificationRow(request.notificationId);
    expect(row).toMatchObject({ status: 'pending', attempts: 1, recipient: user.email, deliveredAt: null, providerMessageId: null });
    expect(row!.lastError).toMatch(/^provider\.recipient_rejected: /);
    const attempts = await attemptRows(request.notificationId);
    expect(attempts).toHaveLength(1);
    expect(attempts[0]).toMatchObject({ attempt: 1, outcome: 'failed' });
    expect(await messagesTo(user.email)).toEqual([]);
  });

  it('a notification for a user whose registration has not arrived yet is retried and delivered once the contact arrives', async () => {
    const userId = newId();
    const request = orderConfirmed(userId);
    const ref = await client.enqueue(sendNotification, request);
    // The first attempt finds no contact: a retryable failure, recorded in the job's log.
    await expect
      .poll(async () => (await attemptLog(ref.id)).map((record) => ({ code: record.code, final: record.final }))[0], poll)
      .toEqual({ code: 'notifications.contact_unknown', final: false });
    expect(await notificationRow(request.notificationId)).toBeUndefined();

    const username = `late${userId.slice(-8)}`;
    const email = `${username}@example.com`;
    await bus.publish(userRegistered, { userId, username, email, registeredAt: new Date().toISOString() });
    const delivery = await ref.result({ timeoutMs: 25_000 });

    expect(delivery).toMatchObject({ notificationId: request.notificationId, status: 'delivered' });
    const messages = await messagesTo(email);
    expect(messages).toHaveLength(1);
    expect(messages[0]!.body).toContain(`Hi ${username}`);
    const attempts = await attemptRows(request.notificationId);
    expect(attempts).toHaveLength(1);
    expect(attempts[0]!.outcome).toBe('delivered');
    expect(attempts[0]!.attempt).toBeGreaterThanOrEqual(2);
    expect((await attemptLog(ref.id)).every((record) => record.code === 'notifications.contact_unknown' && !record.final)).toBe(true);
  });

  it('the same notification enqueued again after it was delivered is answered from the record, without calling the provider', async () => {
    const user = await registeredUser();
    const request = orderConfirmed(user.userId);
    const first = await (await client.enqueue(sendNotification, request)).result({ timeoutMs: 20_000 });
    const before = await messagingStats();
    const second = await (await client.enqueue(sendNotification, request)).result({ timeoutMs: 20_000 });

    expect(second).toEqual(first);
    expect((await messagingStats()).callsReceived).toBe(before.callsReceived);
    expect(await messagesTo(user.email)).toHaveLength(1);
    expect(await attemptRows(request.notificationId)).toHaveLength(1);
  });

  it('the same notification enqueued twice at once reaches the provider as one message', async () => {
    const user = await registeredUser();
    const request = orderConfirmed(user.userId);
    const refs = await Promise.all([client.enqueue(sendNotification, request), client.enqueue(sendNotification, request)]);
    const [first, second] = refs;
    expect(first.id).not.toBe(second.id);
    const deliveries = await Promise.all(refs.map((ref) => ref.result({ timeoutMs: 20_000 })));

    expect(deliveries[0]!.providerMessageId).toBe(deliveries[1]!.providerMessageId);
    const messages = await messagesTo(user.email);
    expect(messages).toHaveLength(1);
    expect(messages[0]!.id).toBe(providerMessageIdFor(request.notificationId));
    expect(await notificationRow(request.notificationId)).toMatchObject({ status: 'delivered', providerMessageId: messages[0]!.id });
  });
});
