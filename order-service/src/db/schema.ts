import { sql } from 'drizzle-orm';
import { boolean, check, index, integer, pgTable, primaryKey, text, timestamp, uniqueIndex, uuid } from 'drizzle-orm/pg-core';

export { inboxTable, outboxTable } from '@civildiy/common/outbox/schema';

/** The DIY kits customers can order. Seeded by migration. */
export const catalogItems = pgTable('catalog_items', {
  sku: text('sku').primaryKey(),
  name: text('name').notNull(),
  description: text('description').notNull(),
  priceCents: integer('price_cents').notNull(),
  currency: text('currency').notNull().default('EUR'),
  active: boolean('active').notNull().default(true),
});

export type OrderStatus = 'pending' | 'confirmed' | 'rejected';

export const orders = pgTable(
  'orders',
  {
    id: uuid('id').primaryKey(),
    customerId: uuid('customer_id').notNull(),
    status: text('status').$type<OrderStatus>().notNull().default('pending'),
    currency: text('currency').notNull(),
    totalCents: integer('total_cents').notNull(),
    /** The client's `Idempotency-Key`, unique per customer. */
    idempotencyKey: text('idempotency_key'),
    /** SHA-256 of the canonical request body, to tell a true repeat from a key reused with another body. */
    requestHash: text('request_hash').notNull(),
    paymentId: text('payment_id'),
    rejectionReason: text('rejection_reason'),
    createdAt: timestamp('created_at', { withTimezone: true }).notNull().defaultNow(),
    updatedAt: timestamp('updated_at', { withTimezone: true }).notNull().defaultNow(),
  },
  (table) => [
    check('orders_status_check', sql`${table.status} in ('pending', 'confirmed', 'rejected')`),
    uniqueIndex('orders_customer_idempotency_key_idx').on(table.customerId, table.idempotencyKey),
    index('orders_customer_id_idx').on(table.customerId, table.id),
  ],
);

/** Lines with the price snapshot taken when the order was accepted. */
export const orderLines = pgTable(
  'order_lines',
  {
    orderId: uuid('order_id')
      .notNull()
      .references(() => orders.id, { onDelete: 'cascade' }),
    lineNo: integer('line_no').notNull(),
    sku: text('sku').notNull(),
    name: text('name').notNull(),
    quantity: integer('quantity').notNull(),
    unitPriceCents: integer('unit_price_cents').notNull(),
  },
  (table) => [primaryKey({ columns: [table.orderId, table.lineNo] })],
);
