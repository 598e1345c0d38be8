import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { eq } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger, newId } from '@civildiy/common';
import { type OpenDatabase } from '@civildiy/common/db';
import type { App } from '@civildiy/common/service';
import { createTestTokens, type TestTokens, DATABASE_TARGETS, openTestDatabase } from '@civildiy/common/testing';
import { buildApp } from '../src/app.ts';
import * as schema from '../src/db/schema.ts';
import { watchOutboxCommits } from '@civildiy/common/outbox';

const migrationsFolder = path.join(path.dirname(fileURLToPath(import.meta.url)), '../src/db/migrations');

describe.each(DATABASE_TARGETS)('order-service API on %s', (target) => {
  let database: OpenDatabase<typeof schema>;
  let app: App;
  let tokens: TestTokens;
  let wakes = 0;

  beforeAll(async () => {
    database = await openTestDatabase(target, { service: 'order-service', migrationsFolder, schema });
    watchOutboxCommits(database.db, () => {
      wakes += 1;
    });
    tokens = await createTestTokens();
    app = await buildApp({
      db: database.db,
      logger: createLogger({ service: 'order-service', level: 'silent' }),
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

  async function outboxTasksFor(orderId: string) {
    const rows = await database.db.select().from(schema.outboxTable).where(eq(schema.outboxTable.kind, 'task'));
    return rows.filter((row) => (row.payload as { input: { orderId?: string } }).input.orderId === orderId);
  }

  it('lists the seeded catalog without authentication', async () => {
    const response = await app.inject({ method: 'GET', url: '/catalog' });
    expect(response.statusCode).toBe(200);
    const skus = response.json().items.map((item: { sku: string }) => item.sku);
    expect(skus).toContain('KIT-SHELF-01');
    expect(skus.length).toBeGreaterThanOrEqual(5);
  });

  it('accepts an order as pending with price snapshots and writes orders.process to the outbox in the same transaction', async () => {
    const user = newId();
    const before = wakes;
    const response = await app.inject({
      method: 'POST',
      url: '/orders',
      headers: await as(user),
      payload: { lines: [{ sku: 'KIT-SHELF-01', quantity: 2 }, { sku: 'KIT-LAMP-01', quantity: 1 }] },
    });
    expect(response.statusCode).toBe(201);
    const order = response.json();
    expect(order).toMatchObject({ customerId: user, status: 'pending', totalCents: 2 * 4900 + 3950, currency: 'EUR' });
    expect(order.lines[0]).toMatchObject({ sku: 'KIT-SHELF-01', name: 'Floating shelf kit', unitPriceCents: 4900, quantity: 2 });
    expect(response.headers.location).toBe(`/orders/${order.id}`);
    const tasks = await outboxTasksFor(order.id);
    expect(tasks).toHaveLength(1);
    expect(tasks[0]).toMatchObject({ name: 'orders.process', destination: 'orders', sentAt: null });
    expect(wakes).toBe(before + 1);
  });

  it('returns the first order for a repeated Idempotency-Key, and 409 when the key comes with other lines', async () => {
    const user = newId();
    const headers = { ...(await as(user)), 'idempotency-key': `key-${newId()}` };
    const payload = { lines: [{ sku: 'KIT-BIRDHOUSE-01', quantity: 1 }] };
    const first = await app.inject({ method: 'POST', url: '/orders', headers, payload });
    const again = await app.inject({ method: 'POST', url: '/orders', headers, payload });
    expect(first.statusCode).toBe(201);
    expect(again.statusCode).toBe(200);
    expect(again.headers['idempotent-replayed']).toBe('true');
    expect(again.json().id).toBe(first.json().id);
    const other = await app.inject({ method: 'POST', url: '/orders', headers, payload: { lines: [{ sku: 'KIT-BIRDHOUSE-01', quantity: 3 }] } });
    expect(other.statusCode).toBe(409);
    expect(other.json().error.code).toBe('orders.idempotency_key_reused');
    expect(await outboxTasksFor(first.json().id)).toHaveLength(1);
  });

  it('creates one order when the same Idempotency-Key arrives concurrently', async () => {
    const user = newId();
    const headers = { ...(await as(user)), 'idempotency-key': `race-${newId()}` };
    const responses = await Promise.all(
      Array.from({ length: 8 }, () => app.inject({ method: 'POST', url: '/orders', headers, payload: { lines: [{ sku: 'KIT-STOOL-01', quantity: 1 }] } })),
    );
    const ids = new Set(responses.map((r) => r.json().id));
    expect(ids.size).toBe(1);
    expect(responses.filter((r) => r.statusCode === 201)).toHaveLength(1);
    expect(responses.every((r) => r.statusCode === 201 || r.statusCode === 200)).toBe(true);
    const list = await app.inject({ method: 'GET', url: '/orders', headers: await as(user) });
    expect(list.json().items).toHaveLength(1);
  });

  it.each([
    ['an unknown sku', { lines: [{ sku: 'KIT-NOPE-99', quantity: 1 }] }, 'orders.unknown_sku'],
    ['a zero quantity', { lines: [{ sku: 'KIT-SHELF-01', quantity: 0 }] }, 'validation_failed'],
    ['a fractional quantity', { lines: [{ sku: 'KIT-SHELF-01', quantity: 1.5 }] }, 'validation_failed'],
    ['a quantity over 100', { lines: [{ sku: 'KIT-SHELF-01', quantity: 101 }] }, 'validation_failed'],
    ['no lines', { lines: [] }, 'validation_failed'],
    ['a repeated sku', { lines: [{ sku: 'KIT-SHELF-01', quantity: 1 }, { sku: 'KIT-SHELF-01', quantity: 2 }] }, 'orders.duplicate_sku'],
    ['a missing body field', {}, 'validation_failed'],
  ])('rejects %s with 400 and writes nothing', async (_case, payload, code) => {
    const user = newId();
    const response = await app.inject({ method: 'POST', url: '/orders', headers: await as(user), payload });
    expect(response.statusCode).toBe(400);
    expect(response.json().error.code).toBe(code);
    const list = await app.inject({ method: 'GET', url: '/orders', headers: await as(user) });
    expect(list.json().items).toEqual([]);
  });

  it('rejects a malformed Idempotency-Key with 400', async () => {
    const response = await app.inject({
      method: 'POST',
      url: '/orders',
      headers: { ...(await as(newId())), 'idempotency-key': 'has spaces in it' },
      payload: { lines: [{ sku: 'KIT-SHELF-01', quantity: 1 }] },
    });
    expect(response.statusCode).toBe(400);
    expect(response.json().error.code).toBe('validation_failed');
  });

  it('requires a valid token to order or read orders', async () => {
    const payload = { lines: [{ sku: 'KIT-SHELF-01', quantity: 1 }] };
    expect((await app.inject({ method: 'POST', url: '/orders', payload })).statusCode).toBe(401);
    const expired = await tokens.token(newId(), { expiresIn: Math.floor(Date.now() / 1000) - 10 });
    const foreign = await tokens.foreignToken(newId());
    for (const token of [expired, foreign, 'garbage']) {
      const response = await app.inject({ method: 'GET', url: '/orders', headers: { authorization: `Bearer ${token}` } });
      expect(response.statusCode).toBe(401);
    }
  });

  it("does not let a user read another user's order", async () => {
    const owner = newId();
    const created = await app.inject({ method: 'POST', url: '/orders', headers: await as(owner), payload: { lines: [{ sku: 'KIT-PLANTER-01', quantity: 1 }] } });
    const id = created.json().id;
    expect((await app.inject({ method: 'GET', url: `/orders/${id}`, headers: await as(owner) })).statusCode).toBe(200);
    const intruder = await app.inject({ method: 'GET', url: `/orders/${id}`, headers: await as(newId()) });
    expect(intruder.statusCode).toBe(403);
    expect(intruder.json().error.code).toBe('orders.forbidden');
    const missing = await app.inject({ method: 'GET', url: `/orders/${newId()}`, headers: await as(owner) });
    expect(missing.statusCode).toBe(404);
    expect(missing.json().error.code).toBe('orders.not_found');
    expect((await app.inject({ method: 'GET', url: '/orders/not-a-uuid', headers: await as(owner) })).statusCode).toBe(400);
  });

  it('pages through my orders newest first with a cursor', async () => {
    const user = newId();
    const headers = await as(user);
    const ids: string[] = [];
    for (let i = 0; i < 5; i += 1) {
      const response = await app.inject({ method: 'POST', url: '/orders', headers, payload: { lines: [{ sku: 'KIT-LAMP-01', quantity: i + 1 }] } });
      ids.push(response.json().id);
    }
    const first = await app.inject({ method: 'GET', url: '/orders?limit=2', headers });
    expect(first.json().items.map((o: { id: string }) => o.id)).toEqual([ids[4], ids[3]]);
    const second = await app.inject({ method: 'GET', url: `/orders?limit=2&cursor=${first.json().nextCursor}`, headers });
    expect(second.json().items.map((o: { id: string }) => o.id)).toEqual([ids[2], ids[1]]);
    const last = await app.inject({ method: 'GET', url: `/orders?limit=2&cursor=${second.json().nextCursor}`, headers });
    expect(last.json().items.map((o: { id: string }) => o.id)).toEqual([ids[0]]);
    expect(last.json().nextCursor).toBeNull();
    expect((await app.inject({ method: 'GET', url: '/orders?limit=0', headers })).statusCode).toBe(400);
    expect((await app.inject({ method: 'GET', url: '/orders?limit=101', headers })).statusCode).toBe(400);
  });
});
