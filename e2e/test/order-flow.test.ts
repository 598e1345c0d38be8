import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { newId } from '@civildiy/common';
import { eventBuses } from './event-buses.ts';
import { call, registerUser, startSystem, type System } from './system.ts';

const poll = { timeout: 30_000, interval: 100 };

/** Flow 5.1 with real processes, run once with the events on Redis Streams and once on Kafka. */
for (const bus of await eventBuses()) describe.skipIf(bus.skipReason !== undefined)(`order flow across real processes, events on ${bus.title}`, () => {
  let system: System;

  beforeAll(async () => {
    system = await startSystem({ env: bus.env() });
  }, 180_000);

  afterAll(async () => {
    await system?.stop();
  });

  const register = () => registerUser(system.urls.auth);

  async function placeOrder(token: string, lines: { sku: string; quantity: number }[], idempotencyKey?: string) {
    return call(`${system.urls.orders}/orders`, { token, body: { lines }, ...(idempotencyKey ? { headers: { 'idempotency-key': idempotencyKey } } : {}) });
  }

  async function orderStatus(token: string, id: string) {
    return (await call(`${system.urls.orders}/orders/${id}`, { token })).body.status as string;
  }

  async function notificationsOf(token: string) {
    return (await call(`${system.urls.notifications}/notifications`, { token })).body.items as { template: string; status: string; recipient: string }[];
  }

  async function paymentsFor(orderId: string) {
    return (await call(`${system.urls.payments}/v1/payments?reference=${orderId}`)).body.items as { status: string }[];
  }

  async function setPaymentFaults(faults: Record<string, number>) {
    const response = await call(`${system.urls.payments}/_admin/faults`, { method: 'PUT', body: faults });
    expect(response.status).toBe(200);
  }

  it('delivers a welcome notification after registration', async () => {
    const user = await register();
    await expect.poll(async () => (await notificationsOf(user.token)).find((n) => n.template === 'welcome')?.status, poll).toBe('delivered');
    const messages = await call(`${system.urls.messaging}/v1/messages?to=${encodeURIComponent(user.email)}`);
    expect(messages.body.items).toHaveLength(1);
  });

  it('confirms an order, charges it once and delivers the confirmation', async () => {
    const user = await register();
    const placed = await placeOrder(user.token, [{ sku: 'KIT-SHELF-01', quantity: 2 }]);
    expect(placed.status).toBe(201);
    expect(placed.body.status).toBe('pending');
    await expect.poll(() => orderStatus(user.token, placed.body.id), poll).toBe('confirmed');
    await expect.poll(async () => (await notificationsOf(user.token)).find((n) => n.template === 'order_confirmed')?.status, poll).toBe('delivered');
    const payments = await paymentsFor(placed.body.id);
    expect(payments).toHaveLength(1);
    expect(payments[0]).toMatchObject({ status: 'succeeded', amountCents: 9800 });
  });

  it('rejects an order whose payment is declined, without retrying it', async () => {
    const user = await register();
    const before = (await call(`${system.urls.payments}/_admin/stats`)).body;
    // 7 × €329 = €2,303: over the provider's €2,000 limit, so the payment is declined.
    const placed = await placeOrder(user.token, [{ sku: 'KIT-WORKBENCH-01', quantity: 7 }]);
    await expect.poll(() => orderStatus(user.token, placed.body.id), poll).toBe('rejected');
    const order = (await call(`${system.urls.orders}/orders/${placed.body.id}`, { token: user.token })).body;
    expect(order.rejectionReason).toBe('amount_over_limit');
    await expect.poll(async () => (await notificationsOf(user.token)).find((n) => n.template === 'order_rejected')?.status, poll).toBe('delivered');
    const after = (await call(`${system.urls.payments}/_admin/stats`)).body;
    expect(after.callsReceived - before.callsReceived).toBe(1);
    expect(after.chargesCreated - before.chargesCreated).toBe(0);
  });

  it('still confirms an order, charged exactly once, when the payments provider fails twice', async () => {
    const user = await register();
    await setPaymentFaults({ failNext: 2 });
    try {
      const placed = await placeOrder(user.token, [{ sku: 'KIT-BIRDHOUSE-01', quantity: 1 }]);
      await expect.poll(() => orderStatus(user.token, placed.body.id), { ...poll, timeout: 60_000 }).toBe('confirmed');
      const faults = (await call(`${system.urls.payments}/_admin/faults`)).body;
      expect(faults.failNext).toBe(0);
      const payments = await paymentsFor(placed.body.id);
      expect(payments.filter((p) => p.status === 'succeeded')).toHaveLength(1);
    } finally {
      await setPaymentFaults({});
    }
  });

  it('creates one order when the same Idempotency-Key is sent concurrently', async () => {
    const user = await register();
    const key = `checkout-${newId()}`;
    const responses = await Promise.all(Array.from({ length: 6 }, () => placeOrder(user.token, [{ sku: 'KIT-LAMP-01', quantity: 1 }], key)));
    const ids = new Set(responses.map((r) => r.body.id));
    expect(ids.size).toBe(1);
    expect(responses.map((r) => r.status).sort()).toEqual([200, 200, 200, 200, 200, 201]);
    const [id] = [...ids] as string[];
    await expect.poll(() => orderStatus(user.token, id!), poll).toBe('confirmed');
    expect(await paymentsFor(id!)).toHaveLength(1);
  });

  it('completes a task on another worker, charged exactly once, when its worker is killed with SIGKILL mid-task', async () => {
    const user = await register();
    // Only the doomed worker runs while the order is taken: stop the regular one first.
    await system.processes.get('worker')!.stop('SIGTERM');
    const doomed = await system.startWorker('worker-doomed');
    await setPaymentFaults({ latencyMs: 4_000 });
    try {
      const before = (await call(`${system.urls.payments}/_admin/stats`)).body.callsReceived as number;
      const placed = await placeOrder(user.token, [{ sku: 'KIT-STOOL-01', quantity: 1 }]);
      // The doomed worker is inside the payment call (the provider has received it) when it dies.
      await expect.poll(async () => (await call(`${system.urls.payments}/_admin/stats`)).body.callsReceived, poll).toBeGreaterThan(before);
      const killed = await doomed.stop('SIGKILL');
      expect(killed.signal).toBe('SIGKILL');
      expect(await orderStatus(user.token, placed.body.id)).toBe('pending');
      await setPaymentFaults({});
      await system.startWorker('worker-2');
      await expect.poll(() => orderStatus(user.token, placed.body.id), { ...poll, timeout: 60_000 }).toBe('confirmed');
      const payments = await paymentsFor(placed.body.id);
      expect(payments).toHaveLength(1);
      expect(payments[0]!.status).toBe('succeeded');
    } finally {
      await setPaymentFaults({});
    }
  });
});
