import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { UNLIMITED_GATEWAY, call, registerUser, startSystem, type RegisteredUser, type System } from './system.ts';

/**
 * A burst far beyond what order-service takes at once (2 requests served, 4 waiting at most 50 ms):
 * the excess is refused fast with 503 service.overloaded, and a refused request did nothing — retried
 * with its Idempotency-Key it places the order now (201), it never finds one placed behind its back.
 */
let system: System;
let user: RegisteredUser;

beforeAll(async () => {
  system = await startSystem({
    services: ['mock-providers', 'auth-service', 'order-service', 'notification-service', 'worker', 'gateway'],
    env: { ...UNLIMITED_GATEWAY, HTTP_MAX_CONCURRENT_REQUESTS: '2', HTTP_MAX_QUEUED_REQUESTS: '4', HTTP_MAX_QUEUE_MS: '50' },
  });
  user = await registerUser(system.urls.gateway, 'overload');
}, 180_000);

afterAll(async () => {
  await system?.stop();
});

const order = (key: string) =>
  call(`${system.urls.gateway}/orders`, { token: user.token, body: { lines: [{ sku: 'KIT-SHELF-01', quantity: 1 }] }, headers: { 'idempotency-key': key } });

describe('a burst beyond what a service takes at once', () => {
  it('is partly refused with 503 service.overloaded and Retry-After, and no refused request placed an order', async () => {
    const keys = Array.from({ length: 80 }, (_, i) => `burst-${i}-${Date.now()}`);
    const answers = await Promise.all(keys.map(async (key) => ({ key, response: await order(key) })));
    const refused = answers.filter((a) => a.response.status === 503);
    const placed = answers.filter((a) => a.response.status === 201);
    expect(refused.length).toBeGreaterThan(0);
    expect(placed.length + refused.length).toBe(keys.length);
    for (const { response } of refused) {
      expect(response.body.error.code).toBe('service.overloaded');
      expect(response.headers.get('retry-after')).toBe('1');
    }
    for (const { key } of refused) {
      const retry = await order(key);
      expect({ key, status: retry.status }).toEqual({ key, status: 201 });
    }
    for (const { key, response } of placed) {
      const replay = await order(key);
      expect({ key, status: replay.status, id: replay.body.id }).toEqual({ key, status: 200, id: response.body.id });
    }
  });

  it('still answers its health probes and metrics while saturated', async () => {
    const burst = Promise.all(Array.from({ length: 40 }, (_, i) => order(`probe-burst-${i}-${Date.now()}`)));
    expect((await call(`${system.urls.orders}/health/live`)).status).toBe(200);
    expect((await fetch(system.metricsUrls['order-service'])).status).toBe(200);
    await burst;
  });
});
