import { createHash } from 'node:crypto';
import { and, asc, desc, eq, inArray, lt } from 'drizzle-orm';
import { ConflictError, ForbiddenError, NotFoundError, ValidationError, derivedId, newId } from '@civildiy/common';
import { processOrder, sendNotification, type OrderLine, type OrderOutcome, type PricedOrderLine } from '@civildiy/common/contracts';
import { isUniqueViolation, type Database, type DbTransaction } from '@civildiy/common/db';
import { outbox } from '@civildiy/common/outbox';
import { findCatalogItems } from './catalog.ts';
import { orderLines, orders, type OrderStatus } from './db/schema.ts';
import { countOrder } from './order-metrics.ts';
import type * as schema from './db/schema.ts';

type Db = Database<typeof schema>;

/** An order as the API shows it. */
export interface OrderView {
  id: string;
  customerId: string;
  status: OrderStatus;
  currency: 'EUR';
  totalCents: number;
  lines: PricedOrderLine[];
  paymentId: string | null;
  rejectionReason: string | null;
  createdAt: string;
  updatedAt: string;
}

/** What {@link placeOrder} returns: the order and whether it was created by this call. */
export interface PlacedOrder {
  order: OrderView;
  created: boolean;
}

/** SHA-256 of the order's lines in a canonical form (order of lines does not matter). */
function requestHash(lines: OrderLine[]): string {
  const canonical = [...lines].sort((a, b) => a.sku.localeCompare(b.sku)).map((line) => `${line.sku}x${line.quantity}`);
  return createHash('sha256').update(canonical.join(',')).digest('hex');
}

async function loadOrder(db: Db | DbTransaction<typeof schema>, id: string): Promise<OrderView | undefined> {
  const [order] = await db.select().from(orders).where(eq(orders.id, id));
  if (!order) return undefined;
  const lines = await db.select().from(orderLines).where(eq(orderLines.orderId, id)).orderBy(orderLines.lineNo);
  return toView(order, lines);
}

function toView(order: typeof orders.$inferSelect, lines: (typeof orderLines.$inferSelect)[]): OrderView {
  return {
    id: order.id,
    customerId: order.customerId,
    status: order.status,
    currency: 'EUR',
    totalCents: order.totalCents,
    lines: lines.map((line) => ({ sku: line.sku, name: line.name, quantity: line.quantity, unitPriceCents: line.unitPriceCents })),
    paymentId: order.paymentId,
    rejectionReason: order.rejectionReason,
    createdAt: order.createdAt.toISOString(),
    updatedAt: order.updatedAt.toISOString(),
  };
}

/**
 * Accepts an order: prices it from the catalog, stores it `pending` with price snapshots and writes
 * `orders.process` to the outbox in the same transaction. With an idempotency key, a repeat of the
 * same request returns the first order (`created: false`) and a repeat with other lines is a 409.
 */
export async function placeOrder(
  db: Db,
  request: { customerId: string; lines: OrderLine[]; idempotencyKey?: string },
): Promise<PlacedOrder> {
  const skus = request.lines.map((line) => line.sku);
  const duplicates = skus.filter((sku, i) => skus.indexOf(sku) !== i);
  if (duplicates.length > 0) {
    throw new ValidationError('Each SKU may appear on one line only', 'orders.duplicate_sku', { details: { skus: [...new Set(duplicates)] } });
  }
  const hash = requestHash(request.lines);
  if (request.idempotencyKey) {
    const existing = await findByIdempotencyKey(db, request.customerId, request.idempotencyKey);
    if (existing) return replay(db, existing, hash);
  }

  const catalog = await findCatalogItems(db, skus);
  const unknown = skus.filter((sku) => !catalog.has(sku));
  if (unknown.length > 0) throw new ValidationError('Unknown SKU', 'orders.unknown_sku', { details: { skus: unknown } });
  const priced: PricedOrderLine[] = request.lines.map((line) => {
    const item = catalog.get(line.sku)!;
    return { sku: line.sku, quantity: line.quantity, name: item.name, unitPriceCents: item.priceCents };
  });
  const totalCents = priced.reduce((sum, line) => sum + line.quantity * line.unitPriceCents, 0);
  const id = newId();

  try {
    const order = await db.transaction(async (tx) => {
      await tx.insert(orders).values({
        id,
        customerId: request.customerId,
        currency: 'EUR',
        totalCents,
        requestHash: hash,
        idempotencyKey: request.idempotencyKey ?? null,
      });
      await tx.insert(orderLines).values(priced.map((line, i) => ({ orderId: id, lineNo: i + 1, ...line })));
      await outbox.task(tx, processOrder, { orderId: id, customerId: request.customerId, currency: 'EUR', lines: priced }, { idempotencyKey: id });
      return (await loadOrder(tx, id))!;
    });
    countOrder('placed');
    return { order, created: true };
  } catch (error) {
    // A concurrent request with the same key committed first: answer as a repeat.
    if (request.idempotencyKey && isUniqueViolation(error)) {
      const existing = await findByIdempotencyKey(db, request.customerId, request.idempotencyKey);
      if (existing) return replay(db, existing, hash);
    }
    throw error;
  }
}

async function findByIdempotencyKey(db: Db, customerId: string, key: string) {
  const [row] = await db
    .select({ id: orders.id, requestHash: orders.requestHash })
    .from(orders)
    .where(and(eq(orders.customerId, customerId), eq(orders.idempotencyKey, key)));
  return row;
}

async function replay(db: Db, existing: { id: string; requestHash: string }, hash: string): Promise<PlacedOrder> {
  if (existing.requestHash !== hash) {
    throw new ConflictError('This Idempotency-Key was used for a different order', 'orders.idempotency_key_reused', { details: { orderId: existing.id } });
  }
  return { order: (await loadOrder(db, existing.id))!, created: false };
}

/** One order, visible to its customer only. */
export async function getOrder(db: Db, id: string, userId: string): Promise<OrderView> {
  const order = await loadOrder(db, id);
  if (!order) throw new NotFoundError('No such order', 'orders.not_found');
  if (order.customerId !== userId) throw new ForbiddenError('This order belongs to someone else', 'orders.forbidden');
  return order;
}

/** A page of a customer's orders, newest first. `cursor` is the last id of the previous page. */
export async function listOrders(db: Db, customerId: string, page: { cursor?: string; limit: number }): Promise<{ items: OrderView[]; nextCursor: string | null }> {
  const conditions = page.cursor ? and(eq(orders.customerId, customerId), lt(orders.id, page.cursor)) : eq(orders.customerId, customerId);
  const rows = await db.select().from(orders).where(conditions).orderBy(desc(orders.id)).limit(page.limit + 1);
  const pageRows = rows.slice(0, page.limit);
  const lines =
    pageRows.length === 0
      ? []
      : await db.select().from(orderLines).where(inArray(orderLines.orderId, pageRows.map((order) => order.id))).orderBy(asc(orderLines.lineNo));
  const items = pageRows.map((order) => toView(order, lines.filter((line) => line.orderId === order.id)));
  return { items, nextCursor: rows.length > page.limit ? pageRows[pageRows.length - 1]!.id : null };
}

/**
 * Applies the worker's outcome (from `order.processed`) inside the consumer's transaction: a pending
 * order becomes confirmed or rejected and `notifications.send` goes to the outbox. An order already
 * final is left as it is (a replayed or late event changes nothing). Returns whether it changed.
 */
export async function applyOutcome(tx: DbTransaction<typeof schema>, outcome: OrderOutcome): Promise<boolean> {
  const updated = await tx
    .update(orders)
    .set({
      status: outcome.status,
      paymentId: outcome.paymentId ?? null,
      rejectionReason: outcome.status === 'rejected' ? (outcome.reason ?? 'rejected') : null,
      updatedAt: new Date(outcome.processedAt),
    })
    .where(and(eq(orders.id, outcome.orderId), eq(orders.status, 'pending')))
    .returning({ id: orders.id, customerId: orders.customerId });
  const order = updated[0];
  if (!order) return false;
  const notificationId = derivedId('notification', 'order', order.id, outcome.status);
  await outbox.task(tx, sendNotification, {
    notificationId,
    userId: order.customerId,
    template: outcome.status === 'confirmed' ? 'order_confirmed' : 'order_rejected',
    data: {
      orderId: order.id,
      totalCents: outcome.totalCents,
      currency: outcome.currency,
      ...(outcome.reason ? { reason: outcome.reason } : {}),
    },
  }, { idempotencyKey: notificationId });
  return true;
}
