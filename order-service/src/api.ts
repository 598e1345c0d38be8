import { z } from 'zod';
import { requireUser, type FastifyPluginAsyncZod } from '@civildiy/common/service';
import { Currency, OrderLine, PricedOrderLine } from '@civildiy/common/contracts';
import type { Database } from '@civildiy/common/db';
import { listCatalog } from './catalog.ts';
import { getOrder, listOrders, placeOrder } from './orders.ts';
import type * as schema from './db/schema.ts';

const CatalogItem = z.object({ sku: z.string(), name: z.string(), description: z.string(), priceCents: z.number().int(), currency: Currency });
const Order = z.object({
  id: z.uuid(),
  customerId: z.uuid(),
  status: z.enum(['pending', 'confirmed', 'rejected']),
  currency: Currency,
  totalCents: z.number().int(),
  lines: z.array(PricedOrderLine),
  paymentId: z.string().nullable(),
  rejectionReason: z.string().nullable(),
  createdAt: z.string(),
  updatedAt: z.string(),
});
const CreateOrder = z.object({ lines: z.array(OrderLine).min(1).max(50) });
const IdempotencyKey = z
  .string()
  .min(1)
  .max(200)
  .regex(/^[\x21-\x7e]+$/, 'printable ASCII without spaces');
const protectedRoute = { security: [{ bearerAuth: [] }] };

/** Every HTTP route of order-service. */
export function ordersApi(deps: { db: Database<typeof schema> }): FastifyPluginAsyncZod {
  return async (app) => {
    app.get(
      '/catalog',
      { schema: { tags: ['catalog'], summary: 'The DIY kits on sale', response: { 200: z.object({ items: z.array(CatalogItem) }) } } },
      async () => ({ items: (await listCatalog(deps.db)).map(({ active: _active, ...item }) => ({ ...item, currency: 'EUR' as const })) }),
    );

    app.post(
      '/orders',
      {
        onRequest: app.authenticate,
        schema: {
          ...protectedRoute,
          tags: ['orders'],
          summary: 'Place an order (processed asynchronously)',
          description: 'With `Idempotency-Key`, a repeat returns the first order (200); the same key with other lines is a 409.',
          headers: z.object({ 'idempotency-key': IdempotencyKey.optional() }),
          body: CreateOrder,
          response: { 200: Order, 201: Order },
        },
      },
      async (request, reply) => {
        const user = requireUser(request);
        const key = request.headers['idempotency-key'];
        const { order, created } = await placeOrder(deps.db, { customerId: user.id, lines: request.body.lines, ...(key ? { idempotencyKey: key } : {}) });
        if (!created) reply.header('idempotent-replayed', 'true');
        return reply.status(created ? 201 : 200).header('location', `/orders/${order.id}`).send(order);
      },
    );

    app.get(
      '/orders/:id',
      { onRequest: app.authenticate, schema: { ...protectedRoute, tags: ['orders'], params: z.object({ id: z.uuid() }), response: { 200: Order } } },
      async (request) => getOrder(deps.db, request.params.id, requireUser(request).id),
    );

    app.get(
      '/orders',
      {
        onRequest: app.authenticate,
        schema: {
          ...protectedRoute,
          tags: ['orders'],
          summary: 'My orders, newest first',
          querystring: z.object({ cursor: z.uuid().optional(), limit: z.coerce.number().int().min(1).max(100).default(20) }),
          response: { 200: z.object({ items: z.array(Order), nextCursor: z.uuid().nullable() }) },
        },
      },
      async (request) =>
        listOrders(deps.db, requireUser(request).id, { limit: request.query.limit, ...(request.query.cursor ? { cursor: request.query.cursor } : {}) }),
    );
  };
}
