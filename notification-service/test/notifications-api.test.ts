import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { sql } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger, newId } from '@civildiy/common';
import { type OpenDatabase } from '@civildiy/common/db';
import type { App } from '@civildiy/common/service';
import { createTestTokens, type TestTokens, DATABASE_TARGETS, openTestDatabase } from '@civildiy/common/testing';
import { buildApp } from '../src/app.ts';
import * as schema from '../src/db/schema.ts';

const migrationsFolder = path.join(path.dirname(fileURLToPath(import.meta.url)), '../src/db/migrations');

const cursorOf = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url');

describe.each(DATABASE_TARGETS)('notification-service API on %s', (target) => {
  let database: OpenDatabase<typeof schema>;
  let app: App;
  let tokens: TestTokens;

  beforeAll(async () => {
    database = await openTestDatabase(target, { service: 'notification-service', migrationsFolder, schema });
    tokens = await createTestTokens();
    app = await buildApp({
      db: database.db,
      logger: createLogger({ service: 'notification-service', level: 'silent' }),
      auth: tokens.keys,
      readiness: { database: () => database.ping() },
      logRequests: false,
    });
    await app.ready();
  });

  afterAll(async () => {
    await app?.close();
    await database?.close();
  });

  async function as(userId: string) {
    return { authorization: `Bearer ${await tokens.token(userId)}` };
  }

  /**
   * Test data: `count` notifications of `userId`, the first one the oldest (a minute apart), or all
   * at the same instant with `sameInstant`. Notifications have no create API: they are the record
   * of deliveries, so the test writes the rows a delivery would have written.
   */
  async function seed(userId: string, count: number, options: { sameInstant?: boolean } = {}): Promise<string[]> {
    const base = Date.now() - 60 * 60_000;
    const rows = Array.from({ length: count }, (_, i) => ({
      id: newId(),
      userId,
      template: 'welcome',
      channel: 'email',
      recipient: `${userId.slice(-8)}@example.com`,
      subject: `Subject ${i}`,
      body: `Body ${i}`,
      status: 'delivered' as const,
      providerMessageId: `msg_${i}`,
      attempts: 1,
      createdAt: new Date(options.sameInstant ? base : base + i * 60_000),
      deliveredAt: new Date(base + i * 60_000 + 500),
    }));
    await database.db.insert(schema.notifications).values(rows);
    return rows.map((row) => row.id);
  }

  /** Every notification id of a user, following `nextCursor` page by page. */
  async function allPages(userId: string, limit: number): Promise<{ ids: string[]; pages: number }> {
    const headers = await as(userId);
    const ids: string[] = [];
    let cursor: string | null = null;
    let pages = 0;
    do {
      const response = await app.inject({ method: 'GET', url: `/notifications?limit=${limit}${cursor ? `&cursor=${cursor}` : ''}`, headers });
      expect(response.statusCode).toBe(200);
      const body = response.json() as { items: { id: string }[]; nextCursor: string | null };
      ids.push(...body.items.map((item) => item.id));
      cursor = body.nextCursor;
      pages += 1;
    } while (cursor !== null && pages < 50);
    return { ids, pages };
  }

  it('requires a valid token: missing, expired, signed with another key or garbage → 401', async () => {
    expect((await app.inject({ method: 'GET', url: '/notifications' })).statusCode).toBe(401);
    const expired = await tokens.token(newId(), { expiresIn: Math.floor(Date.now() / 1000) - 10 });
    const foreign = await tokens.foreignToken(newId());
    for (const token of [expired, foreign, 'garbage']) {
      const response = await app.inject({ method: 'GET', url: '/notifications', headers: { authorization: `Bearer ${token}` } });
      expect(response.statusCode).toBe(401);
      expect(response.json().error.code).toEqual(expect.any(String));
    }
  });

  it('shows an empty list to a user with no notifications', async () => {
    const response = await app.inject({ method: 'GET', url: '/notifications', headers: await as(newId()) });
    expect(response.statusCode).toBe(200);
    expect(response.json()).toEqual({ items: [], nextCursor: null });
  });

  it("shows only the caller's notifications, newest first, never another user's", async () => {
    const me = newId();
    const other = newId();
    const mine = await seed(me, 3);
    const theirs = await seed(other, 2);
    const response = await app.inject({ method: 'GET', url: '/notifications', headers: await as(me) });
    expect(response.statusCode).toBe(200);
    const body = response.json();
    expect(body.items.map((n: { id: string }) => n.id)).toEqual([...mine].reverse());
    expect(body.nextCursor).toBeNull();
    expect(body.items[0]).toMatchObject({ template: 'welcome', channel: 'email', status: 'delivered', attempts: 1, subject: 'Subject 2' });
    expect(Date.parse(body.items[0].createdAt)).toBeGreaterThan(0);
    expect(Date.parse(body.items[0].deliveredAt)).toBeGreaterThan(0);
    for (const id of theirs) expect(JSON.stringify(body)).not.toContain(id);

    const theirView = await app.inject({ method: 'GET', url: '/notifications', headers: await as(other) });
    expect(theirView.json().items.map((n: { id: string }) => n.id)).toEqual([...theirs].reverse());
  });

  it('pages through my notifications with nextCursor, each exactly once, and ends with a null cursor', async () => {
    const me = newId();
    const ids = await seed(me, 5);
    const headers = await as(me);
    const first = await app.inject({ method: 'GET', url: '/notifications?limit=2', headers });
    expect(first.json().items.map((n: { id: string }) => n.id)).toEqual([ids[4], ids[3]]);
    expect(first.json().nextCursor).toEqual(expect.any(String));
    const second = await app.inject({ method: 'GET', url: `/notifications?limit=2&cursor=${first.json().nextCursor}`, headers });
    expect(second.json().items.map((n: { id: string }) => n.id)).toEqual([ids[2], ids[1]]);
    const last = await app.inject({ method: 'GET', url: `/notifications?limit=2&cursor=${second.json().nextCursor}`, headers });
    expect(last.json().items.map((n: { id: string }) => n.id)).toEqual([ids[0]]);
    expect(last.json().nextCursor).toBeNull();
  });

  it('does not lose or repeat notifications created at the same instant when paging', async () => {
    const me = newId();
    const ids = await seed(me, 7, { sameInstant: true });
    const { ids: seen, pages } = await allPages(me, 3);
    expect(pages).toBe(3);
    expect(seen).toHaveLength(7);
    expect(new Set(seen)).toEqual(new Set(ids));
  });

  it('does not lose notifications created within the same millisecond at a page boundary (microsecond timestamps)', async () => {
    const me = newId();
    const second = new Date(Date.now() - 30 * 60_000).toISOString().slice(0, 19);
    const ids = [newId(), newId(), newId(), newId()];
    await database.db.insert(schema.notifications).values(
      ids.map((id, i) => ({
        id,
        userId: me,
        template: 'welcome',
        channel: 'email',
        recipient: 'same-ms@example.com',
        subject: `Subject ${i}`,
        body: `Body ${i}`,
        // Postgres keeps microseconds: four rows inside one millisecond.
        createdAt: sql`${`${second}.123${i + 1}00Z`}::timestamptz`,
      })),
    );
    const { ids: seen } = await allPages(me, 1);
    expect(seen).toEqual([...ids].reverse());
  });

  it("a cursor from another user's list shows none of that user's notifications", async () => {
    const owner = newId();
    await seed(owner, 3);
    const page = await app.inject({ method: 'GET', url: '/notifications?limit=1', headers: await as(owner) });
    const cursor = page.json().nextCursor as string;
    const intruder = await app.inject({ method: 'GET', url: `/notifications?cursor=${cursor}`, headers: await as(newId()) });
    expect(intruder.statusCode).toBe(200);
    expect(intruder.json().items).toEqual([]);
  });

  it.each([
    ['limit=0', 'validation_failed'],
    ['limit=101', 'validation_failed'],
    ['limit=2.5', 'validation_failed'],
    ['limit=many', 'validation_failed'],
    [`cursor=${'x'.repeat(201)}`, 'validation_failed'],
  ])('rejects %s with 400', async (query, code) => {
    const response = await app.inject({ method: 'GET', url: `/notifications?${query}`, headers: await as(newId()) });
    expect(response.statusCode).toBe(400);
    expect(response.json().error.code).toBe(code);
  });

  it('accepts the limit bounds 1 and 100', async () => {
    const me = newId();
    await seed(me, 2);
    const one = await app.inject({ method: 'GET', url: '/notifications?limit=1', headers: await as(me) });
    expect(one.json().items).toHaveLength(1);
    const hundred = await app.inject({ method: 'GET', url: '/notifications?limit=100', headers: await as(me) });
    expect(hundred.json().items).toHaveLength(2);
  });

  it.each([
    ['garbage text', 'not-a-cursor'],
    ['base64 of non-JSON', Buffer.from('hello world').toString('base64url')],
    ['a JSON object', cursorOf({ createdAt: new Date().toISOString(), id: newId() })],
    ['a non-uuid id', cursorOf([new Date().toISOString(), 'not-a-uuid'])],
    ['a non-date time', cursorOf(['yesterday', newId()])],
    ['a time only JavaScript can read', cursorOf(['1', newId()])],
    ['a JavaScript date string', cursorOf([new Date().toString(), newId()])],
    ['a day that does not exist', cursorOf(['2024-02-31T00:00:00.000000Z', newId()])],
    ['year zero', cursorOf(['0000-01-01T00:00:00.000000Z', newId()])],
    ['an empty array', cursorOf([])],
  ])('rejects a forged cursor (%s) with 400 notifications.invalid_cursor', async (_case, cursor) => {
    const response = await app.inject({ method: 'GET', url: `/notifications?cursor=${encodeURIComponent(cursor)}`, headers: await as(newId()) });
    expect(response.statusCode).toBe(400);
    expect(response.json().error.code).toBe('notifications.invalid_cursor');
  });
});
