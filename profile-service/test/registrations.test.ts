import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { and, eq } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger, newId } from '@civildiy/common';
import { profileUpdated, userRegistered, type Profile, type UserRegistered } from '@civildiy/common/contracts';
import { type OpenDatabase } from '@civildiy/common/db';
import { RedisStreamsEventBus, createEnvelope, type EventEnvelope, type Subscription } from '@civildiy/common/events';
import { OutboxRelay, watchOutboxCommits } from '@civildiy/common/outbox';
import type { App } from '@civildiy/common/service';
import { REDIS_URL, createTestTokens, removeRedisPrefix, uniquePrefix, type TestTokens, DATABASE_TARGETS, openTestDatabase } from '@civildiy/common/testing';
import { buildApp } from '../src/app.ts';
import * as schema from '../src/db/schema.ts';
import { CONSUMER_GROUP, subscribeToRegistrations } from '../src/handlers.ts';

const migrationsFolder = path.join(path.dirname(fileURLToPath(import.meta.url)), '../src/db/migrations');
const logger = createLogger({ service: 'profile-service', level: process.env.TEST_LOG_LEVEL ?? 'silent' });
const poll = { timeout: 15_000, interval: 50 };

type ProfileEnvelope = EventEnvelope<Profile>;

/**
 * Collects the `profile.updated` events a test consumer group receives, and resolves waiters as
 * matching ones arrive.
 */
class ProfileEvents {
  readonly received: ProfileEnvelope[] = [];
  private waiters: { match: (event: ProfileEnvelope) => boolean; resolve: (event: ProfileEnvelope) => void }[] = [];

  add(event: ProfileEnvelope): void {
    this.received.push(event);
    for (const waiter of this.waiters.filter((w) => w.match(event))) waiter.resolve(event);
    this.waiters = this.waiters.filter((w) => !w.match(event));
  }

  /** The first received event matching `match`, waiting up to `timeoutMs` for it. */
  next(match: (event: ProfileEnvelope) => boolean, timeoutMs = 15_000): Promise<ProfileEnvelope> {
    const seen = this.received.find(match);
    if (seen) return Promise.resolve(seen);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no matching profile.updated within ${timeoutMs} ms`)), timeoutMs);
      this.waiters.push({
        match,
        resolve: (event) => {
          clearTimeout(timer);
          resolve(event);
        },
      });
    });
  }

  of(userId: string): ProfileEnvelope[] {
    return this.received.filter((event) => event.data.userId === userId);
  }
}

describe.each(DATABASE_TARGETS)('profiles from user.registered on %s', (target) => {
  const prefix = uniquePrefix('profile-registrations');
  const observerGroup = `test-observer-${newId()}`;
  const events = new ProfileEvents();
  let database: OpenDatabase<typeof schema>;
  let bus: RedisStreamsEventBus;
  let relay: OutboxRelay;
  let subscription: Subscription;
  let observer: Subscription;
  let tokens: TestTokens;
  let app: App;

  beforeAll(async () => {
    database = await openTestDatabase(target, { service: 'profile-service', migrationsFolder, schema });
    bus = new RedisStreamsEventBus({ connection: REDIS_URL, prefix: `${prefix}:`, logger });
    relay = new OutboxRelay({ db: database.db, publisher: bus, logger, pollIntervalMs: 200 });
    watchOutboxCommits(database.db, () => relay.wake());
    relay.start();
    subscription = subscribeToRegistrations({ subscriber: bus, db: database.db });
    observer = bus.subscribe({ group: observerGroup, events: [profileUpdated], handle: (envelope) => events.add(envelope) });
    tokens = await createTestTokens();
    app = await buildApp({
      db: database.db,
      logger,
      auth: tokens.keys,
      readiness: {},
      logRequests: false,
    });
    await Promise.all([subscription.ready, observer.ready, app.ready()]);
  });

  afterAll(async () => {
    await app?.close();
    await subscription?.close();
    await observer?.close();
    await relay?.stop();
    await bus?.close();
    await database?.close();
    await removeRedisPrefix(prefix);
  });

  function newUser(): UserRegistered {
    const userId = newId();
    const username = `Maker_${userId.slice(-12)}`;
    return { userId, username, email: `${username.toLowerCase()}@example.com`, registeredAt: new Date().toISOString() };
  }

  /** Resolves once profile-service's group has acknowledged every event on users-events (none pending, none unread). */
  async function registrationsSettled(): Promise<void> {
    await expect
      .poll(async () => (await bus.groups(userRegistered.topic)).find((group) => group.name === CONSUMER_GROUP), poll)
      .toMatchObject({ pending: 0, lag: 0 });
  }

  async function profileOf(userId: string) {
    return app.inject({ method: 'GET', url: `/profiles/${userId}` });
  }

  async function outboxEventsOf(userId: string) {
    return database.db
      .select()
      .from(schema.outboxTable)
      .where(and(eq(schema.outboxTable.name, profileUpdated.type), eq(schema.outboxTable.key, userId)));
  }

  it('creates the profile at version 1 named after the username and publishes profile.updated with the registration’s correlation id', async () => {
    const user = newUser();
    const registration = await bus.publish(userRegistered, user, { context: { correlationId: `corr-${user.userId}` } });
    const published = await events.next((event) => event.data.userId === user.userId);

    expect(published).toMatchObject({ type: 'profile.updated', key: user.userId, correlationId: `corr-${user.userId}`, causationId: registration.id });
    expect(published.data).toMatchObject({ userId: user.userId, username: user.username, displayName: user.username, bio: '', skills: [], avatarUrl: null, version: 1 });
    const read = await profileOf(user.userId);
    expect(read.statusCode).toBe(200);
    expect(read.json()).toEqual(published.data);
    expect(read.headers.etag).toBe('"1"');
  });

  it('gives one profile and one profile.updated when the same registration event is delivered twice', async () => {
    const user = newUser();
    const envelope = createEnvelope(userRegistered, user);
    await bus.publishEnvelope(envelope);
    await bus.publishEnvelope(envelope);
    await events.next((event) => event.data.userId === user.userId);
    await registrationsSettled();

    expect((await profileOf(user.userId)).json()).toMatchObject({ version: 1, displayName: user.username });
    expect(await outboxEventsOf(user.userId)).toHaveLength(1);
    const inbox = await database.db
      .select()
      .from(schema.inboxTable)
      .where(and(eq(schema.inboxTable.consumerGroup, CONSUMER_GROUP), eq(schema.inboxTable.eventId, envelope.id)));
    expect(inbox).toHaveLength(1);
  });

  it('gives one profile when two different registration events arrive for the same user', async () => {
    const user = newUser();
    await bus.publish(userRegistered, user);
    await bus.publish(userRegistered, { ...user, registeredAt: new Date(Date.now() + 1_000).toISOString() });
    await events.next((event) => event.data.userId === user.userId);
    await registrationsSettled();

    expect((await profileOf(user.userId)).json()).toMatchObject({ version: 1 });
    expect(await outboxEventsOf(user.userId)).toHaveLength(1);
    const byName = await app.inject({ method: 'GET', url: `/profiles?username=${user.username}` });
    expect(byName.json().items).toHaveLength(1);
  });

  it('keeps an edit made before the registration event arrived, as one profile', async () => {
    const user = newUser();
    const token = await tokens.token(user.userId, { username: user.username });
    const edited = await app.inject({
      method: 'PUT',
      url: '/profiles/me',
      headers: { authorization: `Bearer ${token}` },
      payload: { displayName: 'Early Bird', skills: ['tiling'] },
    });
    expect(edited.statusCode).toBe(200);
    expect(edited.json()).toMatchObject({ username: user.username, displayName: 'Early Bird', version: 1 });

    await bus.publish(userRegistered, user);
    await registrationsSettled();

    expect((await profileOf(user.userId)).json()).toEqual(edited.json());
    expect(await outboxEventsOf(user.userId)).toHaveLength(1);
    const published = await events.next((event) => event.data.userId === user.userId);
    expect(published.data).toMatchObject({ displayName: 'Early Bird', version: 1 });
  });

  it('changes nothing when a registration event is replayed after the user edited the profile', async () => {
    const user = newUser();
    await bus.publish(userRegistered, user);
    await events.next((event) => event.data.userId === user.userId);
    const token = await tokens.token(user.userId, { username: user.username });
    const edited = await app.inject({ method: 'PUT', url: '/profiles/me', headers: { authorization: `Bearer ${token}` }, payload: { displayName: 'Renamed' } });
    expect(edited.json()).toMatchObject({ displayName: 'Renamed', version: 2 });
    const renamed = await events.next((event) => event.data.userId === user.userId && event.data.version === 2);
    expect(renamed.data.displayName).toBe('Renamed');

    await bus.publish(userRegistered, user);
    await registrationsSettled();
    expect((await profileOf(user.userId)).json()).toMatchObject({ displayName: 'Renamed', version: 2 });
    expect(await outboxEventsOf(user.userId)).toHaveLength(2);
  });

  it('dead-letters, rather than drops, a registration whose username another user holds in another case', async () => {
    const holder = newUser();
    await bus.publish(userRegistered, holder);
    await events.next((event) => event.data.userId === holder.userId);
    const clash = { ...newUser(), username: holder.username.toUpperCase() };
    await bus.publish(userRegistered, clash);

    await expect
      .poll(async () => (await bus.deadLetters(userRegistered.topic)).find((letter) => (letter.envelope?.data as UserRegistered | undefined)?.userId === clash.userId), poll)
      .toMatchObject({ group: CONSUMER_GROUP, reason: 'permanent', error: { code: 'profiles.username_taken' } });
    expect((await profileOf(clash.userId)).statusCode).toBe(404);
    expect(events.of(clash.userId)).toEqual([]);
  });
});
