import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startPostgresCluster, type PostgresCluster } from '@civildiy/common/testing';
import { UNLIMITED_GATEWAY, call, registerUser, startSystem, type System } from './system.ts';

/**
 * order-service and notification-service on a Postgres server that restarts while orders arrive
 * (20 orders/s through the gateway). Before, a pg client in use emitted an unhandled 'error' and
 * crashed the service in 4 runs of 6, and the survivors answered 500. Now: no process exits, every
 * answer is a 201 or a retryable 503 with a code, and every accepted order is confirmed and
 * notified exactly once after the server is back.
 */
let cluster: PostgresCluster;
let system: System;

beforeAll(async () => {
  cluster = await startPostgresCluster();
  system = await startSystem({
    services: ['mock-providers', 'auth-service', 'order-service', 'notification-service', 'worker', 'gateway'],
    env: { ...UNLIMITED_GATEWAY, ORDER_DATABASE_URL: await cluster.createDatabase('orders'), NOTIFICATION_DATABASE_URL: await cluster.createDatabase('notifications') },
  });
}, 180_000);

afterAll(async () => {
  await system?.stop();
  await cluster?.remove();
});

interface Attempt {
  key: string;
  status?: number;
  code?: string;
  orderId?: string;
}

describe('a Postgres restart under load', () => {
  it('crashes nothing, answers 201 or 503 with a code, and loses or duplicates no accepted order', async () => {
    const user = await registerUser(system.urls.gateway, 'pgrestart');
    const attempts: Attempt[] = [];
    const inFlight: Promise<void>[] = [];
    let sending = true;
    const sender = (async () => {
      for (let i = 0; sending; i++) {
        const attempt: Attempt = { key: `pg-restart-${i}` };
        attempts.push(attempt);
        inFlight.push(
          call(`${system.urls.gateway}/orders`, { token: user.token, body: { lines: [{ sku: 'KIT-SHELF-01', quantity: 1 }] }, headers: { 'idempotency-key': attempt.key } }).then(
            (response) => {
              attempt.status = response.status;
              attempt.code = response.body?.error?.code;
              if (response.status === 201) attempt.orderId = response.body.id;
            },
          ),
        );
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
    })();

    // Some orders before, then the restart in the middle of the load, then some after.
    await expect.poll(() => attempts.filter((a) => a.status === 201).length, { timeout: 30_000 }).toBeGreaterThanOrEqual(20);
    await cluster.restart();
    const afterRestart = attempts.length;
    await expect.poll(() => attempts.slice(afterRestart).filter((a) => a.status === 201).length, { timeout: 60_000 }).toBeGreaterThanOrEqual(20);
    sending = false;
    await sender;
    await Promise.all(inFlight);

    for (const name of ['order-service', 'notification-service', 'worker']) {
      expect({ name, exitCode: system.processes.get(name)!.child.exitCode }).toEqual({ name, exitCode: null });
    }
    const failures = attempts.filter((a) => a.status !== 201);
    for (const failure of failures) expect({ status: failure.status, code: failure.code }).toMatchObject({ status: 503, code: expect.stringMatching(/^(database\.unavailable|request\.deadline_exceeded|service\.overloaded)$/) });

    // Every request the client saw fail is safe to retry: it either finds its order or places it now.
    for (const failure of failures) {
      await expect
        .poll(async () => {
          const retry = await call(`${system.urls.gateway}/orders`, { token: user.token, body: { lines: [{ sku: 'KIT-SHELF-01', quantity: 1 }] }, headers: { 'idempotency-key': failure.key } });
          if (retry.status === 200 || retry.status === 201) failure.orderId = retry.body.id;
          return retry.status;
        }, { timeout: 30_000, interval: 250 })
        .toBeOneOf([200, 201]);
    }

    // Every order confirmed, each charged once and notified once.
    const orderIds = attempts.map((a) => a.orderId!);
    expect(new Set(orderIds).size).toBe(attempts.length);
    const statuses = async () => {
      const all: Record<string, string> = {};
      let cursor: string | null = null;
      do {
        const page = (await call(`${system.urls.gateway}/orders?limit=100${cursor ? `&cursor=${cursor}` : ''}`, { token: user.token })).body;
        for (const order of page.items as { id: string; status: string }[]) all[order.id] = order.status;
        cursor = page.nextCursor as string | null;
      } while (cursor);
      return all;
    };
    await expect.poll(async () => Object.values(await statuses()).filter((s) => s === 'confirmed').length, { timeout: 90_000, interval: 500 }).toBe(attempts.length);
    expect(Object.keys(await statuses()).sort()).toEqual([...orderIds].sort());
    const payments = (await call(`${system.urls.payments}/v1/payments?customerId=${user.id}&limit=500`)).body.items as { reference: string; status: string }[];
    expect(payments.filter((p) => p.status === 'succeeded').map((p) => p.reference).sort()).toEqual([...orderIds].sort());
    await expect
      .poll(async () => {
        const messages = (await call(`${system.urls.messaging}/v1/messages?to=${encodeURIComponent(user.email)}&limit=500`)).body.items as { subject?: string }[];
        return messages.filter((m) => m.subject?.startsWith('Your order ')).length;
      }, { timeout: 60_000, interval: 500 })
      .toBe(attempts.length);
  });
});
