import { newId } from '@civildiy/common';
import { userRegistered } from '@civildiy/common/contracts';
import { RedisStreamsEventBus, type EnvelopeOf, type Subscription } from '@civildiy/common/events';
import { OutboxRelay, outboxTable, watchOutboxCommits } from '@civildiy/common/outbox';
import { createRedis } from '@civildiy/common/redis';
import { and, count, eq, isNotNull } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { users } from '../src/db/schema.ts';
import { REDIS_URL, drivers, newAccount, openTestStore, quietLogger, startAuthService, type AuthServiceUnderTest, type TestStore } from './auth-service-under-test.ts';

describe.each(drivers)('user.registered through the outbox on %s', (driver) => {
  const prefix = `test:auth-events:${newId()}:`;
  let store: TestStore;
  let auth: AuthServiceUnderTest;
  let bus: RedisStreamsEventBus;
  let relay: OutboxRelay;
  let subscription: Subscription;
  const received = new Map<string, EnvelopeOf<typeof userRegistered>>();
  const waiters = new Map<string, (envelope: EnvelopeOf<typeof userRegistered>) => void>();

  const delivered = (userId: string) =>
    new Promise<EnvelopeOf<typeof userRegistered>>((resolve) => {
      const already = received.get(userId);
      if (already) resolve(already);
      else waiters.set(userId, resolve);
    });

  beforeAll(async () => {
    store = await openTestStore(driver);
    bus = new RedisStreamsEventBus({ connection: REDIS_URL, prefix, logger: quietLogger, blockMs: 100 });
    relay = new OutboxRelay({ db: store.db, publisher: bus, logger: quietLogger });
    // As the runtime does: a commit that wrote to the outbox wakes the relay.
    watchOutboxCommits(store.db, () => relay.wake());
    auth = await startAuthService({ store });
    subscription = await bus.subscribe({
      group: 'auth-service-test',
      events: [userRegistered],
      handle: (envelope) => {
        received.set(envelope.data.userId, envelope);
        waiters.get(envelope.data.userId)?.(envelope);
      },
    });
  });
  afterAll(async () => {
    await subscription?.close();
    await relay?.stop();
    await auth?.close();
    await store?.close();
    await bus?.close();
    const redis = createRedis(REDIS_URL, { name: 'auth-events-cleanup' });
    const keys = await redis.keys(`${prefix}*`);
    if (keys.length > 0) await redis.del(...keys);
    await redis.quit();
  });

  const outboxRowsFor = (userId: string) => store.db.select().from(outboxTable).where(eq(outboxTable.key, userId));

  it('writes one user.registered row with the new user’s data in the registration transaction', async () => {
    const account = newAccount();
    const { user } = (await auth.app.inject({ method: 'POST', url: '/auth/register', payload: account })).json();
    const rows = await outboxRowsFor(user.id);
    expect(rows).toHaveLength(1);
    expect(rows[0]).toMatchObject({ kind: 'event', name: 'user.registered', destination: 'users-events', key: user.id });
    expect(rows[0]!.payload).toMatchObject({
      type: 'user.registered',
      version: 1,
      data: { userId: user.id, email: account.email, username: account.username, registeredAt: user.createdAt },
    });
  });

  it('a registration that fails leaves neither a user nor an outbox row', async () => {
    const account = newAccount();
    await auth.app.inject({ method: 'POST', url: '/auth/register', payload: account });
    const [usersBefore] = await store.db.select({ n: count() }).from(users);
    const [outboxBefore] = await store.db.select({ n: count() }).from(outboxTable);
    const duplicate = await auth.app.inject({ method: 'POST', url: '/auth/register', payload: newAccount({ username: account.username }) });
    expect(duplicate.statusCode).toBe(409);
    const [usersAfter] = await store.db.select({ n: count() }).from(users);
    const [outboxAfter] = await store.db.select({ n: count() }).from(outboxTable);
    expect(usersAfter!.n).toBe(usersBefore!.n);
    expect(outboxAfter!.n).toBe(outboxBefore!.n);
  });

  it('the relay publishes user.registered to the Redis Streams bus and marks the row sent', async () => {
    relay.start();
    const account = newAccount();
    const response = await auth.app.inject({ method: 'POST', url: '/auth/register', payload: account, headers: { 'x-request-id': 'register-req-1' } });
    const { user } = response.json();
    const envelope = await delivered(user.id);
    expect(envelope).toMatchObject({ type: 'user.registered', topic: 'users-events', key: user.id, correlationId: 'register-req-1' });
    expect(envelope.data).toEqual({ userId: user.id, email: account.email, username: account.username, registeredAt: user.createdAt });
    await expect.poll(async () => (await store.db.select().from(outboxTable).where(and(eq(outboxTable.key, user.id), isNotNull(outboxTable.sentAt)))).length).toBe(1);
  });
});
