import { createLogger } from '@civildiy/common';
import type { App } from '@civildiy/common/service';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { buildMessagingApp } from '../src/app.ts';

let app: App;

function send(body: Record<string, unknown>, idempotencyKey?: string) {
  return app.inject({
    method: 'POST',
    url: '/v1/messages',
    payload: body,
    headers: idempotencyKey === undefined ? {} : { 'idempotency-key': idempotencyKey },
  });
}

const email = (overrides: Record<string, unknown> = {}) => ({ channel: 'email', to: 'ada@example.com', subject: 'Your order', body: 'It is confirmed.', ...overrides });
const sms = (overrides: Record<string, unknown> = {}) => ({ channel: 'sms', to: '+4915112345678', body: 'Order confirmed', ...overrides });

async function stats() {
  return (await app.inject({ method: 'GET', url: '/_admin/stats' })).json();
}

beforeAll(async () => {
  app = await buildMessagingApp({ logger: createLogger({ service: 'mock-providers-test', level: 'silent' }), logRequests: false });
  await app.ready();
});

afterAll(async () => {
  await app.close();
});

beforeEach(async () => {
  await app.inject({ method: 'POST', url: '/_admin/reset' });
});

describe('POST /v1/messages', () => {
  it('delivers an email: 200 with a receipt, and the inspection reads show subject and body', async () => {
    const response = await send(email(), 'm-1');
    expect(response.statusCode).toBe(200);
    const receipt = response.json();
    expect(receipt).toMatchObject({ status: 'delivered', channel: 'email', to: 'ada@example.com' });
    expect(receipt.id).toMatch(/^msg_[0-9a-f]{32}$/);
    expect(Date.parse(receipt.deliveredAt)).not.toBeNaN();

    const stored = (await app.inject({ method: 'GET', url: `/v1/messages/${receipt.id}` })).json();
    expect(stored).toEqual({ ...receipt, subject: 'Your order', body: 'It is confirmed.' });
    expect((await app.inject({ method: 'GET', url: '/v1/messages?to=ADA@example.com' })).json().items).toEqual([stored]);
    expect(await stats()).toMatchObject({ provider: 'messaging', callsReceived: 1, messagesCreated: 1 });
  });

  it('delivers an SMS to an E.164 number', async () => {
    const response = await send(sms(), 'm-sms');
    expect(response.statusCode).toBe(200);
    expect(response.json()).toMatchObject({ channel: 'sms', to: '+4915112345678', status: 'delivered' });
  });

  it('replays the receipt for the same key and body without sending again', async () => {
    const first = await send(email(), 'm-replay');
    const second = await send(email(), 'm-replay');
    expect(second.headers['idempotent-replayed']).toBe('true');
    expect(second.json()).toEqual(first.json());
    expect((await app.inject({ method: 'GET', url: '/v1/messages' })).json().items).toHaveLength(1);
  });

  it('answers 409 idempotency_key_reused for the same key with another body', async () => {
    await send(email(), 'm-reused');
    const response = await send(email({ body: 'Something else' }), 'm-reused');
    expect(response.statusCode).toBe(409);
    expect(response.json().error.code).toBe('idempotency_key_reused');
    expect(await stats()).toMatchObject({ messagesCreated: 1, keyConflicts: 1 });
  });

  it('sends once when the same message arrives many times at once with one key', async () => {
    await app.inject({ method: 'PUT', url: '/_admin/faults', payload: { latencyMs: 20 } });
    const responses = await Promise.all(Array.from({ length: 5 }, () => send(sms(), 'm-concurrent')));
    expect(new Set(responses.map((r) => r.json().id)).size).toBe(1);
    expect(await stats()).toMatchObject({ messagesCreated: 1, idempotentReplays: 4 });
  });

  it('answers 400 idempotency_key_required without the header', async () => {
    const response = await send(email());
    expect(response.statusCode).toBe(400);
    expect(response.json().error.code).toBe('idempotency_key_required');
  });

  it.each([
    ['an email channel with a phone number', email({ to: '+4915112345678' }), 'to'],
    ['an sms channel with an email address', sms({ to: 'ada@example.com' }), 'to'],
    ['an sms number without country code', sms({ to: '015112345678' }), 'to'],
    ['an empty body', email({ body: '' }), 'body'],
    ['an SMS over 1600 characters', sms({ body: 'x'.repeat(1_601) }), 'body'],
    ['an unknown channel', { channel: 'pigeon', to: 'ada@example.com', body: 'hi' }, 'channel'],
  ])('answers 400 validation_failed for %s', async (_name, body, path) => {
    const response = await send(body, 'm-invalid');
    expect(response.statusCode).toBe(400);
    expect(response.json().error.code).toBe('validation_failed');
    expect(response.json().error.details.map((d: { path: string }) => d.path)).toContain(path);
  });
});

describe('recipient rule', () => {
  it('rejects email to bounce.example with 422 recipient_rejected, stores no message and replays the rejection', async () => {
    const first = await send(email({ to: 'Someone@Bounce.Example' }), 'm-bounce');
    expect(first.statusCode).toBe(422);
    expect(first.json().error).toMatchObject({ code: 'recipient_rejected', details: { reason: 'mailbox_unavailable' } });
    const again = await send(email({ to: 'Someone@Bounce.Example' }), 'm-bounce');
    expect(again.statusCode).toBe(422);
    expect(again.headers['idempotent-replayed']).toBe('true');
    expect((await app.inject({ method: 'GET', url: '/v1/messages' })).json().items).toEqual([]);
    expect(await stats()).toMatchObject({ messagesCreated: 0, rejections: 1 });
  });

  it('rejects SMS to +999 numbers with 422 recipient_rejected', async () => {
    const response = await send(sms({ to: '+9991234567' }), 'm-999');
    expect(response.statusCode).toBe(422);
    expect(response.json().error.details.reason).toBe('unreachable_number');
  });
});

describe('GET /v1/messages', () => {
  it('answers 404 message_not_found for an unknown id', async () => {
    const response = await app.inject({ method: 'GET', url: '/v1/messages/msg_nothing' });
    expect(response.statusCode).toBe(404);
    expect(response.json().error.code).toBe('message_not_found');
  });

  it('lists newest first, filters by recipient and channel and honours the limit', async () => {
    await send(email({ to: 'a@example.com' }), '1');
    await send(email({ to: 'b@example.com' }), '2');
    await send(sms(), '3');
    const all = (await app.inject({ method: 'GET', url: '/v1/messages' })).json().items;
    expect(all.map((m: { to: string }) => m.to)).toEqual(['+4915112345678', 'b@example.com', 'a@example.com']);
    expect((await app.inject({ method: 'GET', url: '/v1/messages?to=a@example.com' })).json().items).toHaveLength(1);
    expect((await app.inject({ method: 'GET', url: '/v1/messages?channel=email' })).json().items).toHaveLength(2);
    expect((await app.inject({ method: 'GET', url: '/v1/messages?limit=2' })).json().items).toHaveLength(2);
    expect((await app.inject({ method: 'GET', url: '/v1/messages?limit=0' })).statusCode).toBe(400);
  });
});
