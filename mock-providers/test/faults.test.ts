import { createLogger } from '@civildiy/common';
import type { App } from '@civildiy/common/service';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { buildMessagingApp, buildPaymentsApp } from '../src/app.ts';

const logger = createLogger({ service: 'mock-providers-test', level: 'silent' });
const CUSTOMER = '0190a6f0-0000-7000-8000-000000000001';
let payments: App;
let messaging: App;

const order = (reference: string) => ({ amountCents: 1_000, currency: 'EUR', customerId: CUSTOMER, reference });
const charge = (reference: string, key: string) =>
  payments.inject({ method: 'POST', url: '/v1/payments', payload: order(reference), headers: { 'idempotency-key': key } });
const setFaults = (app: App, faults: Record<string, unknown>) => app.inject({ method: 'PUT', url: '/_admin/faults', payload: faults });
const statsOf = async (app: App) => (await app.inject({ method: 'GET', url: '/_admin/stats' })).json();

beforeAll(async () => {
  payments = await buildPaymentsApp({ logger, logRequests: false, seed: 42 });
  messaging = await buildMessagingApp({ logger, logRequests: false, seed: 42 });
});

afterAll(async () => {
  await Promise.all([payments.close(), messaging.close()]);
});

beforeEach(async () => {
  await Promise.all([payments.inject({ method: 'POST', url: '/_admin/reset' }), messaging.inject({ method: 'POST', url: '/_admin/reset' })]);
});

describe('/_admin/faults', () => {
  it('starts with no faults, and PUT replaces them (omitted fields take their defaults)', async () => {
    expect((await payments.inject({ method: 'GET', url: '/_admin/faults' })).json()).toEqual({ failNext: 0, failureRate: 0, latencyMs: 0, failureStatus: 503 });
    await setFaults(payments, { failureRate: 0.5, failureStatus: 500 });
    const put = await setFaults(payments, { failNext: 3 });
    expect(put.statusCode).toBe(200);
    expect(put.json()).toEqual({ failNext: 3, failureRate: 0, latencyMs: 0, failureStatus: 503 });
    expect((await payments.inject({ method: 'GET', url: '/_admin/faults' })).json().failNext).toBe(3);
  });

  it.each([
    [{ failureRate: 1.5 }],
    [{ failureStatus: 502 }],
    [{ failNext: -1 }],
    [{ latencyMs: 60_000 }],
  ])('answers 400 validation_failed for %j', async (faults) => {
    const response = await setFaults(payments, faults);
    expect(response.statusCode).toBe(400);
    expect(response.json().error.code).toBe('validation_failed');
  });
});

describe('fault injection', () => {
  it('fails the next N calls with 503 provider_unavailable, then succeeds — and a client retrying with one key is charged once', async () => {
    await setFaults(payments, { failNext: 2 });
    const first = await charge('order-retried', 'key-retried');
    const second = await charge('order-retried', 'key-retried');
    const third = await charge('order-retried', 'key-retried');
    expect([first.statusCode, second.statusCode, third.statusCode]).toEqual([503, 503, 200]);
    expect(first.json().error).toMatchObject({ code: 'provider_unavailable', details: { injected: true } });
    expect(third.headers['idempotent-replayed']).toBeUndefined();
    expect((await charge('order-retried', 'key-retried')).headers['idempotent-replayed']).toBe('true');
    expect((await payments.inject({ method: 'GET', url: '/v1/payments?reference=order-retried' })).json().items).toHaveLength(1);
    expect(await statsOf(payments)).toMatchObject({ callsReceived: 4, failuresInjected: 2, chargesCreated: 1 });
    expect((await payments.inject({ method: 'GET', url: '/_admin/faults' })).json().failNext).toBe(0);
  });

  it('answers injected failures with 500 provider_error when failureStatus is 500', async () => {
    await setFaults(payments, { failNext: 1, failureStatus: 500 });
    const response = await charge('order-500', 'key-500');
    expect(response.statusCode).toBe(500);
    expect(response.json().error.code).toBe('provider_error');
  });

  it('waits latencyMs before answering', async () => {
    await setFaults(payments, { latencyMs: 150 });
    const started = performance.now();
    const response = await charge('order-slow', 'key-slow');
    expect(response.statusCode).toBe(200);
    expect(performance.now() - started).toBeGreaterThanOrEqual(145);
  });

  it('fails a reproducible subset of calls for a failure rate: the same seed and settings give the same pattern', async () => {
    const pattern = async (round: string) => {
      await setFaults(payments, { failureRate: 0.5 });
      const statuses: number[] = [];
      for (let i = 0; i < 20; i += 1) statuses.push((await charge(`${round}-${i}`, `${round}-${i}`)).statusCode);
      return statuses;
    };
    const first = await pattern('a');
    const second = await pattern('b');
    expect(second).toEqual(first);
    expect(first).toContain(503);
    expect(first).toContain(200);
  });

  it('applies start-up faults given when the app is built', async () => {
    const app = await buildPaymentsApp({ logger, logRequests: false, faults: { failNext: 1, failureRate: 0, latencyMs: 0, failureStatus: 503 } });
    try {
      const call = () => app.inject({ method: 'POST', url: '/v1/payments', payload: order('boot'), headers: { 'idempotency-key': 'boot' } });
      expect((await call()).statusCode).toBe(503);
      expect((await call()).statusCode).toBe(200);
    } finally {
      await app.close();
    }
  });

  it('injects failures into messaging too, before any message is sent', async () => {
    await setFaults(messaging, { failNext: 1 });
    const send = () =>
      messaging.inject({ method: 'POST', url: '/v1/messages', payload: { channel: 'sms', to: '+4915112345678', body: 'hi' }, headers: { 'idempotency-key': 'sms-1' } });
    expect((await send()).statusCode).toBe(503);
    expect((await send()).statusCode).toBe(200);
    expect(await statsOf(messaging)).toMatchObject({ failuresInjected: 1, messagesCreated: 1 });
  });

  it('counts calls by outcome in /metrics', async () => {
    await setFaults(payments, { failNext: 1 });
    await charge('order-metrics', 'key-metrics');
    await charge('order-metrics', 'key-metrics');
    const metrics = (await payments.inject({ method: 'GET', url: '/metrics' })).body;
    expect(metrics).toMatch(/civildiy_mock_provider_calls_total\{provider="payments",outcome="injected_failure"[^}]*\} [1-9]/);
    expect(metrics).toMatch(/civildiy_mock_provider_calls_total\{provider="payments",outcome="succeeded"[^}]*\} [1-9]/);
  });
});

describe('/_admin/reset', () => {
  it('forgets payments, idempotency keys, counters and faults', async () => {
    await charge('order-before', 'key-before');
    await setFaults(payments, { failNext: 5, latencyMs: 10 });
    expect((await payments.inject({ method: 'POST', url: '/_admin/reset' })).statusCode).toBe(204);

    expect((await payments.inject({ method: 'GET', url: '/v1/payments' })).json().items).toEqual([]);
    expect((await payments.inject({ method: 'GET', url: '/_admin/faults' })).json()).toEqual({ failNext: 0, failureRate: 0, latencyMs: 0, failureStatus: 503 });
    expect(await statsOf(payments)).toEqual({ provider: 'payments', callsReceived: 0, failuresInjected: 0, idempotentReplays: 0, keyConflicts: 0, chargesCreated: 0, declines: 0 });
    const again = await charge('order-before', 'key-before');
    expect(again.statusCode).toBe(200);
    expect(again.headers['idempotent-replayed']).toBeUndefined();
  });
});

describe('service kit endpoints', () => {
  it('serves health, and an OpenAPI document per provider', async () => {
    expect((await payments.inject({ method: 'GET', url: '/health/ready' })).statusCode).toBe(200);
    expect((await messaging.inject({ method: 'GET', url: '/health/live' })).json()).toEqual({ status: 'ok' });
    const paymentsDocs = (await payments.inject({ method: 'GET', url: '/docs/json' })).json();
    expect(paymentsDocs.info.title).toBe('Mock payments provider');
    expect(Object.keys(paymentsDocs.paths)).toEqual(expect.arrayContaining(['/v1/payments', '/v1/payments/{id}', '/_admin/faults']));
    const messagingDocs = (await messaging.inject({ method: 'GET', url: '/docs/json' })).json();
    expect(Object.keys(messagingDocs.paths)).toEqual(expect.arrayContaining(['/v1/messages', '/v1/messages/{id}', '/_admin/stats']));
  });
});
