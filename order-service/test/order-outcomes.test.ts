import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { eq } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger, derivedId, newId } from '@civildiy/common';
import { orderProcessed, type OrderOutcome } from '@civildiy/common/contracts';
import { openDatabase, type OpenDatabase } from '@civildiy/common/db';
import { RedisStreamsEventBus, createEnvelope, type Subscription } from '@civildiy/common/events';
import { REDIS_URL, removeRedisPrefix, uniquePrefix } from '@civildiy/common/testing';
import * as schema from '../src/db/schema.ts';
import { subscribeToOutcomes } from '../src/handlers.ts';
import { placeOrder } from '../src/orders.ts';

const migrationsFolder = path.join(path.dirname(fileURLToPath(import.meta.url)), '../src/db/migrations');
const logger = createLogger({ service: 'order-service', level: 'silent' });

let database: OpenDatabase<typeof schema>;
let bus: RedisStreamsEventBus;
let subscription: Subscription;
let prefix: string;

beforeAll(async () => {
  prefix = uniquePrefix('order-outcomes');
  database = await openDatabase({ service: 'order-service', dataDir: 'memory://', migrationsFolder, schema });
  bus = new RedisStreamsEventBus({ connection: REDIS_URL, prefix: `${prefix}:`, logger, claimIdleMs: 1_000 });
  subscription = subscribeToOutcomes({ subscriber: bus, db: database.db, logger });
  await subscription.ready;
});

afterAll(async () => {
  await subscription?.close();
  await bus?.close();
  await database?.close();
  await removeRedisPrefix(prefix);
});

async function pendingOrder() {
  const { order } = await placeOrder(database.db, { customerId: newId(), lines: [{ sku: 'KIT-SHELF-01', quantity: 1 }] });
  return order;
}

function outcome(order: { id: string; customerId: string }, status: 'confirmed' | 'rejected'): OrderOutcome {
  return {
    orderId: order.id,
    customerId: order.customerId,
    status,
    totalCents: 4900,
    currency: 'EUR',
    ...(status === 'confirmed' ? { paymentId: 'pay_1' } : { reason: 'card_declined' }),
    processedAt: new Date().toISOString(),
  };
}

/**
 * Publishes the envelopes, then a marker event, and waits until the marker's order is confirmed: one
 * consumer handles a stream's events in order, so the envelopes before it have been handled too.
 */
async function publishAndSettle(...envelopes: ReturnType<typeof createEnvelope<typeof orderProcessed>>[]) {
  for (const envelope of envelopes) await bus.publishEnvelope(envelope);
  const marker = await pendingOrder();
  await bus.publish(orderProcessed, outcome(marker, 'confirmed'));
  await expect.poll(async () => (await database.db.select().from(schema.orders).where(eq(schema.orders.id, marker.id)))[0]?.status, { timeout: 15_000, interval: 50 }).toBe('confirmed');
}

async function statusOf(id: string) {
  return (await database.db.select().from(schema.orders).where(eq(schema.orders.id, id)))[0]?.status;
}

async function notificationTasksFor(orderId: string) {
  const rows = await database.db.select().from(schema.outboxTable).where(eq(schema.outboxTable.name, 'notifications.send'));
  return rows.filter((row) => (row.payload as { input: { data: { orderId?: string } } }).input.data.orderId === orderId);
}

describe('order.processed consumer', () => {
  it('confirms a pending order and requests one confirmation notification', async () => {
    const order = await pendingOrder();
    await publishAndSettle(createEnvelope(orderProcessed, outcome(order, 'confirmed')));
    expect(await statusOf(order.id)).toBe('confirmed');
    const tasks = await notificationTasksFor(order.id);
    expect(tasks).toHaveLength(1);
    expect((tasks[0]!.payload as { input: { template: string; notificationId: string } }).input).toMatchObject({
      template: 'order_confirmed',
      notificationId: derivedId('notification', 'order', order.id, 'confirmed'),
    });
  });

  it('rejects a pending order with the decline reason', async () => {
    const order = await pendingOrder();
    await publishAndSettle(createEnvelope(orderProcessed, outcome(order, 'rejected')));
    const [row] = await database.db.select().from(schema.orders).where(eq(schema.orders.id, order.id));
    expect(row).toMatchObject({ status: 'rejected', rejectionReason: 'card_declined' });
    expect((await notificationTasksFor(order.id))[0]!.name).toBe('notifications.send');
  });

  it('changes nothing when the same event is delivered again', async () => {
    const order = await pendingOrder();
    const envelope = createEnvelope(orderProcessed, outcome(order, 'confirmed'));
    await publishAndSettle(envelope, envelope, envelope);
    expect(await statusOf(order.id)).toBe('confirmed');
    expect(await notificationTasksFor(order.id)).toHaveLength(1);
    const inbox = await database.db.select().from(schema.inboxTable).where(eq(schema.inboxTable.eventId, envelope.id));
    expect(inbox).toHaveLength(1);
  });

  it('does not let a later, different outcome overturn a final order', async () => {
    const order = await pendingOrder();
    await publishAndSettle(createEnvelope(orderProcessed, outcome(order, 'confirmed')), createEnvelope(orderProcessed, outcome(order, 'rejected')));
    expect(await statusOf(order.id)).toBe('confirmed');
    expect(await notificationTasksFor(order.id)).toHaveLength(1);
  });
});
