import { Counter, register as globalRegistry, type Registry } from 'prom-client';
import { reuseMetric } from '@civildiy/common/service';

/** What happened to an order: placed (accepted, pending), then confirmed or rejected. */
export type OrderEvent = 'placed' | 'confirmed' | 'rejected';

/**
 * `civildiy_orders_total{event}`: orders placed, confirmed and rejected by this process (counted
 * once each, after the transaction that made it so committed). The dashboard charts it per minute.
 */
export function ordersTotal(registry: Registry = globalRegistry): Counter<'event'> {
  return reuseMetric(
    registry,
    'civildiy_orders_total',
    () => new Counter({ name: 'civildiy_orders_total', help: 'Orders placed, confirmed and rejected', labelNames: ['event'] as const, registers: [registry] }),
  );
}

/** Counts one order event in the global registry. */
export function countOrder(event: OrderEvent): void {
  ordersTotal().inc({ event });
}
