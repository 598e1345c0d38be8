import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { and, eq } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger, derivedId, newId } from '@civildiy/common';
import { sendNotification, userRegistered } from '@civildiy/common/contracts';
import { type OpenDatabase } from '@civildiy/common/db';
import { createEnvelope, RedisStreamsEventBus, type Subscription } from '@civildiy/common/events';
import type { OutboxTaskPayload } from '@civildiy/common/outbox';
import * as schema from '../src/db/schema.ts';
import { CONSUMER_GROUP, subscribeToRegistrations } from '../src/handlers.ts';
import { REDIS_URL, removeRedisPrefix, uniquePrefix, DATABASE_TARGETS, openTestDatabase } from '@civildiy/common/testing';
import { watchOutboxCommits } from '@civildiy/common/outbox';

const migrationsFolder = path.join(path.dirname(fileURLToPath(import.meta.url)), '../src/db/migrations');
const logger = createLogger({ service: 'notification-service', level: process.env.TEST_LOG_LEVEL ?? 'silent' });
const poll = { timeout: 15_000, interval: 50 };

describe.each(DATABASE_TARGETS)('user.registered consumption on %s', (target) => {
  const prefix = uniquePrefix('notification-registrations');
  let database: OpenDatabase<typeof schema>;
  let bus: RedisStreamsEventBus;
  let subscription: Subscription;
  let changes = 0;

  beforeAll(async () => {
    database = await openTestDatabase(target, { service: 'notification-service', migrationsFolder, schema });
    watchOutboxCommits(database.db, () => {
      changes += 1;
    });
    bus = new RedisStreamsEventBus({ connection: REDIS_URL, prefix: `${prefix}:`, logger });
    subscription = subscribeToRegistrations({ subscriber: bus, db: database.db });
    await subscription.ready;
  });

  afterAll(async () => {
    await subscription?.close();
    await bus?.close();
    await database?.close();
    await removeRedisPrefix(prefix);
  });

  function newUser() {
    const userId = newId();
    const username = `maker${userId.slice(-8)}`;
    return { userId, username, email: `${username}@example.com`, registeredAt: new Date().toISOString() };
  }

  async function contactRows(userId: string) {
    return database.db.select().from(schema.contacts).where(eq(schema.contacts.userId, userId));
  }

  async function welcomeTaskRows(userId: string) {
    const rows = await database.db
      .select()
      .from(schema.outboxTable)
      .where(and(eq(schema.outboxTable.kind, 'task'), eq(schema.outboxTable.name, sendNotification.name)));
    return rows.filter((row) => ((row.payload as OutboxTaskPayload).input as { userId?: string }).userId === userId);
  }

  /** Resolves once this service's group has acknowledged every event on the topic (none pending, none unread). */
  async function allAcknowledged(): Promise<void> {
    await expect
      .poll(async () => (await bus.groups(userRegistered.topic)).find((group) => group.name === CONSUMER_GROUP), poll)
      .toMatchObject({ pending: 0, lag: 0 });
  }

  it('stores the contact and writes one welcome notifications.send task to the outbox in the same transaction', async () => {
    const user = newUser();
    const before = changes;
    const envelope = await bus.publish(userRegistered, user, { context: { correlationId: `corr-${user.userId}` } });
    await expect.poll(async () => (await contactRows(user.userId)).length, poll).toBe(1);

    expect((await contactRows(user.userId))[0]).toMatchObject({ userId: user.userId, email: user.email, username: user.username });
    const tasks = await welcomeTaskRows(user.userId);
    expect(tasks).toHaveLength(1);
    expect(tasks[0]).toMatchObject({ kind: 'task', name: 'notifications.send', destination: 'notifications', sentAt: null });
    const payload = tasks[0]!.payload as OutboxTaskPayload;
    expect(payload.input).toEqual({
      notificationId: derivedId('notification', 'welcome', user.userId),
      userId: user.userId,
      template: 'welcome',
      data: { username: user.username },
    });
    // The welcome task carries the registration's correlation id, caused by the event.
    expect(payload.context).toMatchObject({ correlationId: `corr-${user.userId}`, causationId: envelope.id });
    await allAcknowledged();
    expect(changes).toBe(before + 1);
  });

  it('the same envelope delivered twice gives one contact and one outbox row (inbox)', async () => {
    const user = newUser();
    const envelope = createEnvelope(userRegistered, user);
    await bus.publishEnvelope(envelope);
    await bus.publishEnvelope(envelope);
    await allAcknowledged();

    expect(await contactRows(user.userId)).toHaveLength(1);
    expect(await welcomeTaskRows(user.userId)).toHaveLength(1);
    const inbox = await database.db
      .select()
      .from(schema.inboxTable)
      .where(and(eq(schema.inboxTable.consumerGroup, CONSUMER_GROUP), eq(schema.inboxTable.eventId, envelope.id)));
    expect(inbox).toHaveLength(1);
  });

  it('a second registration event of the same user updates the contact and asks for the same welcome notification', async () => {
    const user = newUser();
    await bus.publish(userRegistered, user);
    await bus.publish(userRegistered, { ...user, email: `new-${user.email}` });
    await allAcknowledged();

    const contacts = await contactRows(user.userId);
    expect(contacts).toHaveLength(1);
    expect(contacts[0]!.email).toBe(`new-${user.email}`);
    // The welcome notification id is derived from the user, so delivery sends it once however often it is asked for.
    const ids = (await welcomeTaskRows(user.userId)).map((row) => ((row.payload as OutboxTaskPayload).input as { notificationId: string }).notificationId);
    expect(new Set(ids)).toEqual(new Set([derivedId('notification', 'welcome', user.userId)]));
  });
});
