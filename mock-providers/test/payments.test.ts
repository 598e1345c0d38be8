import { createLogger } from '@civildiy/common';
import type { App } from '@civildiy/common/service';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { buildPaymentsApp } from '../src/app.ts';

const CUSTOMER = '0190a6f0-0000-7000-8000-000000000001';
const DECLINED_CUSTOMER = '0190a6f0-0000-7000-8000-00000000dead';

let app: App;

function charge(body: Record<string, unknown>, idempotencyKey?: string) {
  return app.inject({
    method: 'POST',
    url: '/v1/payments',
    payload: body,
    headers: idempotencyKey === undefined ? {} : { 'idempotency-key': idempotencyKey },
  });
}

const order = (overrides: Record<string, unknown> = {}) => ({ amountCents: 4_990, currency: 'EUR', customerId: CUSTOMER, reference: `order-${crypto.randomUUID()}`, ...overrides });

async function stats() {
  return (await app.inject({ method: 'GET', url: '/_admin/stats' })).json();
}

beforeAll(async () => {
  app = await buildPaymentsApp({ logger: createLogger({ service: 'mock-providers-test', level: 'silent' }), logRequests: false });
  await app.ready();
});

afterAll(async () => {
  await app.close();
});

beforeEach(async () => {
  expect((await app.inject({ method: 'POST', url: '/_admin/reset' })).statusCode).toBe(204);
});

describe('POST /v1/payments', () => {
  it('charges and answers 200 succeeded with the payment, which the inspection reads then show', async () => {
    const body = order({ description: 'shelf kit' });
    const response = await charge(body, 'key-1');
    expect(response.statusCode).toBe(200);
    const payment = response.json();
    expect(payment).toMatchObject({ status: 'succeeded', amountCents: 4_990, currency: 'EUR', customerId: CUSTOMER, reference: body.reference, description: 'shelf kit' });
    expect(payment.id).toMatch(/^pay_[0-9a-f]{32}$/);
    expect(response.headers['idempotent-replayed']).toBeUndefined();

    expect((await app.inject({ method: 'GET', url: `/v1/payments/${payment.id}` })).json()).toEqual(payment);
    const listed = await app.inject({ method: 'GET', url: `/v1/payments?reference=${body.reference}` });
    expect(listed.json().items).toEqual([payment]);
    expect(await stats()).toMatchObject({ provider: 'payments', callsReceived: 1, chargesCreated: 1, declines: 0 });
  });

  it('replays the stored answer for the same key and body (any key order) without charging again', async () => {
    const body = order();
    const first = await charge(body, 'key-replay');
    const reordered = Object.fromEntries(Object.entries(body).reverse());
    const second = await charge(reordered, 'key-replay');
    expect(second.statusCode).toBe(200);
    expect(second.headers['idempotent-replayed']).toBe('true');
    expect(second.json()).toEqual(first.json());
    expect((await app.inject({ method: 'GET', url: `/v1/payments?reference=${body.reference}` })).json().items).toHaveLength(1);
    expect(await stats()).toMatchObject({ callsReceived: 2, chargesCreated: 1, idempotentReplays: 1 });
  });

  it('answers 409 idempotency_key_reused when a key comes back with another body, and charges nothing more', async () => {
    const body = order();
    await charge(body, 'key-reused');
    const response = await charge({ ...body, amountCents: 5_000 }, 'key-reused');
    expect(response.statusCode).toBe(409);
    expect(response.json().error.code).toBe('idempotency_key_reused');
    expect(await stats()).toMatchObject({ chargesCreated: 1, keyConflicts: 1 });
  });

  it('charges once when the same request arrives many times at once with one key', async () => {
    await app.inject({ method: 'PUT', url: '/_admin/faults', payload: { latencyMs: 30 } });
    const body = order();
    const responses = await Promise.all(Array.from({ length: 8 }, () => charge(body, 'key-concurrent')));
    expect(responses.map((r) => r.statusCode)).toEqual(Array(8).fill(200));
    expect(new Set(responses.map((r) => r.json().id)).size).toBe(1);
    expect(responses.filter((r) => r.headers['idempotent-replayed'] === 'true')).toHaveLength(7);
    expect((await app.inject({ method: 'GET', url: `/v1/payments?reference=${body.reference}` })).json().items).toHaveLength(1);
    expect(await stats()).toMatchObject({ chargesCreated: 1, idempotentReplays: 7 });
  });

  it('answers 400 idempotency_key_required without the header (or with a blank one) and 400 idempotency_key_invalid for a key over 255 characters', async () => {
    for (const key of [undefined, '', '   ']) {
      const response = await charge(order(), key);
      expect(response.statusCode).toBe(400);
      expect(response.json().error.code).toBe('idempotency_key_required');
    }
    const tooLong = await charge(order(), 'k'.repeat(256));
    expect(tooLong.statusCode).toBe(400);
    expect(tooLong.json().error.code).toBe('idempotency_key_invalid');
    expect(await stats()).toMatchObject({ callsReceived: 4, chargesCreated: 0 });
  });

  it.each([
    ['a zero amount', { amountCents: 0 }, 'amountCents'],
    ['a fractional amount', { amountCents: 10.5 }, 'amountCents'],
    ['a currency other than EUR', { currency: 'USD' }, 'currency'],
    ['a customer id that is not a UUID', { customerId: 'customer-1' }, 'customerId'],
    ['an empty reference', { reference: ' ' }, 'reference'],
  ])('answers 400 validation_failed for %s', async (_name, overrides, path) => {
    const response = await charge(order(overrides), 'key-invalid');
    expect(response.statusCode).toBe(400);
    expect(response.json().error.code).toBe('validation_failed');
    expect(response.json().error.details.map((d: { path: string }) => d.path)).toContain(path);
  });

  it('answers 400 invalid_json for a body that is not JSON', async () => {
    const response = await app.inject({ method: 'POST', url: '/v1/payments', payload: '{"amountCents":', headers: { 'content-type': 'application/json', 'idempotency-key': 'k' } });
    expect(response.statusCode).toBe(400);
    expect(response.json().error.code).toBe('invalid_json');
  });
});

describe('decline rule', () => {
  it('declines an amount over 200000 cents with 402 payment_declined / amount_over_limit and records the declined payment', async () => {
    const response = await charge(order({ amountCents: 200_001 }), 'key-over');
    expect(response.statusCode).toBe(402);
    const body = response.json();
    expect(body.error).toMatchObject({ code: 'payment_declined', details: { declineCode: 'amount_over_limit' } });
    expect(body.payment).toMatchObject({ status: 'declined', declineCode: 'amount_over_limit', amountCents: 200_001 });
    expect((await app.inject({ method: 'GET', url: `/v1/payments/${body.payment.id}` })).json().status).toBe('declined');
    expect(await stats()).toMatchObject({ chargesCreated: 0, declines: 1 });
  });

  it('accepts exactly 200000 cents', async () => {
    expect((await charge(order({ amountCents: 200_000 }), 'key-limit')).statusCode).toBe(200);
  });

  it('declines a customer id ending in "dead" (any case) with card_declined', async () => {
    for (const [key, customerId] of [['k-lower', DECLINED_CUSTOMER], ['k-upper', DECLINED_CUSTOMER.toUpperCase()]] as const) {
      const response = await charge(order({ customerId }), key);
      expect(response.statusCode).toBe(402);
      expect(response.json().payment.declineCode).toBe('card_declined');
    }
  });

  it('replays a decline for the same key instead of trying again', async () => {
    const body = order({ customerId: DECLINED_CUSTOMER });
    const first = await charge(body, 'key-decline');
    const second = await charge(body, 'key-decline');
    expect(second.statusCode).toBe(402);
    expect(second.headers['idempotent-replayed']).toBe('true');
    expect(second.json()).toEqual(first.json());
    expect(await stats()).toMatchObject({ declines: 1 });
  });
});

describe('GET /v1/payments', () => {
  it('answers 404 payment_not_found for an unknown id', async () => {
    const response = await app.inject({ method: 'GET', url: '/v1/payments/pay_nothing' });
    expect(response.statusCode).toBe(404);
    expect(response.json().error.code).toBe('payment_not_found');
  });

  it('lists newest first, filters by reference or customer and honours the limit', async () => {
    const other = '0190a6f0-0000-7000-8000-000000000002';
    await charge(order({ reference: 'r-1' }), 'a');
    await charge(order({ reference: 'r-2' }), 'b');
    await charge(order({ reference: 'r-2', customerId: other }), 'c');
    const all = (await app.inject({ method: 'GET', url: '/v1/payments' })).json().items;
    expect(all.map((p: { reference: string }) => p.reference)).toEqual(['r-2', 'r-2', 'r-1']);
    expect((await app.inject({ method: 'GET', url: '/v1/payments?reference=r-2' })).json().items).toHaveLength(2);
    expect((await app.inject({ method: 'GET', url: `/v1/payments?customerId=${other}` })).json().items).toHaveLength(1);
    expect((await app.inject({ method: 'GET', url: '/v1/payments?limit=1' })).json().items).toHaveLength(1);
  });

  it('answers 400 validation_failed for a bad limit or customer id', async () => {
    for (const query of ['limit=0', 'limit=501', 'limit=x', 'customerId=nope']) {
      const response = await app.inject({ method: 'GET', url: `/v1/payments?${query}` });
      expect(response.statusCode).toBe(400);
      expect(response.json().error.code).toBe('validation_failed');
    }
  });
});
