import { PermanentError, createLogger } from '@civildiy/common';
import { EmbeddingsClient, MessagingClient, PaymentsClient, ProviderUnavailableError, type EmbeddingsClientOptions } from '@civildiy/common/providers';
import type { App } from '@civildiy/common/service';
import { Registry } from 'prom-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildEmbeddingsApp, buildMessagingApp, buildPaymentsApp } from '../src/app.ts';

// The shared clients against the real mock providers, over HTTP: the contract both sides must keep.
const logger = createLogger({ service: 'mock-providers-test', level: 'silent' });
let paymentsApp: App;
let messagingApp: App;
let embeddingsApp: App;
let fixedSizeApp: App;
let payments: PaymentsClient;
let messaging: MessagingClient;
let embeddingsUrl: string;
let fixedSizeUrl: string;

beforeAll(async () => {
  paymentsApp = await buildPaymentsApp({ logger, logRequests: false });
  messagingApp = await buildMessagingApp({ logger, logRequests: false });
  embeddingsApp = await buildEmbeddingsApp({ logger, logRequests: false, apiKey: 'sk-contract' });
  // A model server with a fixed vector size that ignores the requested dimensions.
  fixedSizeApp = await buildEmbeddingsApp({ logger, logRequests: false, dimensions: 64, fixedDimensions: true });
  const paymentsUrl = await paymentsApp.listen({ port: 0, host: '127.0.0.1' });
  const messagingUrl = await messagingApp.listen({ port: 0, host: '127.0.0.1' });
  embeddingsUrl = await embeddingsApp.listen({ port: 0, host: '127.0.0.1' });
  fixedSizeUrl = await fixedSizeApp.listen({ port: 0, host: '127.0.0.1' });
  payments = new PaymentsClient({ baseUrl: paymentsUrl, timeoutMs: 2_000, metricsRegistry: new Registry() });
  messaging = new MessagingClient({ baseUrl: messagingUrl, timeoutMs: 2_000, metricsRegistry: new Registry() });
});

afterAll(async () => {
  await Promise.all([paymentsApp.close(), messagingApp.close(), embeddingsApp.close(), fixedSizeApp.close()]);
});

const charge = (key: string, customerId = '0190a6f0-0000-7000-8000-000000000001', amountCents = 2_500) =>
  payments.charge({ idempotencyKey: key, amountCents, currency: 'EUR', customerId, reference: key });

describe('PaymentsClient against the mock payments provider', () => {
  it('gets succeeded with the payment id, and the same id again on a retry with the key', async () => {
    const first = await charge('contract-ok');
    expect(first).toEqual({ status: 'succeeded', paymentId: expect.stringMatching(/^pay_/) });
    expect(await charge('contract-ok')).toEqual(first);
  });

  it('gets a decline as a result with the decline code and payment id', async () => {
    expect(await charge('contract-dead', '0190a6f0-0000-7000-8000-00000000dead')).toEqual({
      status: 'declined',
      paymentId: expect.stringMatching(/^pay_/),
      declineCode: 'card_declined',
    });
    expect((await charge('contract-over', undefined, 300_000)).status).toBe('declined');
  });

  it('gets ProviderUnavailableError for injected failures and one charge once it retries through', async () => {
    await paymentsApp.inject({ method: 'PUT', url: '/_admin/faults', payload: { failNext: 2 } });
    for (let i = 0; i < 2; i += 1) await expect(charge('contract-retry')).rejects.toBeInstanceOf(ProviderUnavailableError);
    expect((await charge('contract-retry')).status).toBe('succeeded');
    const listed = await paymentsApp.inject({ method: 'GET', url: '/v1/payments?reference=contract-retry' });
    expect(listed.json().items).toHaveLength(1);
  });

  it('gets PermanentError provider.rejected for a request the provider refuses', async () => {
    const error = await payments
      .charge({ idempotencyKey: 'contract-bad', amountCents: -1, currency: 'EUR', customerId: '0190a6f0-0000-7000-8000-000000000001', reference: 'x' })
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(PermanentError);
    expect(error).toMatchObject({ code: 'provider.rejected', details: { status: 400, providerCode: 'validation_failed' } });
  });
});

describe('MessagingClient against the mock messaging provider', () => {
  it('gets a delivered receipt', async () => {
    const receipt = await messaging.send({ idempotencyKey: 'contract-mail', channel: 'email', to: 'ada@example.com', subject: 'Hi', body: 'Hello' });
    expect(receipt).toEqual({ id: expect.stringMatching(/^msg_/), status: 'delivered', deliveredAt: expect.any(String) });
  });

  it('gets PermanentError provider.recipient_rejected for a bouncing recipient', async () => {
    const error = await messaging.send({ idempotencyKey: 'contract-bounce', channel: 'email', to: 'x@bounce.example', body: 'Hello' }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(PermanentError);
    expect((error as PermanentError).code).toBe('provider.recipient_rejected');
  });
});

describe('EmbeddingsClient against the mock embeddings provider', () => {
  const client = (options: Partial<EmbeddingsClientOptions> = {}) =>
    new EmbeddingsClient({
      baseUrl: embeddingsUrl,
      model: 'civildiy-hash-embed-1',
      apiKey: 'sk-contract',
      dimensions: 256,
      timeoutMs: 2_000,
      metricsRegistry: new Registry(),
      ...options,
    });

  it('gets one vector per text in input order, of the configured dimension, as the provider answers them', async () => {
    const texts = ['build a cedar raised garden bed', 'wiring a ceiling lamp', 'raised bed for the garden from cedar boards'];
    const result = await client().embed(texts);
    expect(result).toMatchObject({ model: 'civildiy-hash-embed-1', dimensions: 256 });
    expect(result.vectors).toHaveLength(3);
    const one = await client().embed([texts[1]!]);
    expect(result.vectors[1]).toEqual(one.vectors[0]);
    expect((await client({ dimensions: 32 }).embed(texts)).vectors.map((vector) => vector.length)).toEqual([32, 32, 32]);
  });

  it('gets PermanentError provider.dimension_mismatch when the provider answers another dimension than configured', async () => {
    const error = await client({ baseUrl: fixedSizeUrl }).embed(['garden bed']).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(PermanentError);
    expect(error).toMatchObject({ code: 'provider.dimension_mismatch', details: { provider: 'embeddings', expected: 256, received: 64 } });
    // Without an expected dimension, the provider's is taken.
    expect((await client({ baseUrl: fixedSizeUrl, dimensions: undefined }).embed(['garden bed'])).dimensions).toBe(64);
  });

  it('gets PermanentError provider.rejected with the provider code for a bad request and a wrong API key', async () => {
    const tooLong = await client().embed(['fine', 'x'.repeat(40_000)]).catch((e: unknown) => e);
    expect(tooLong).toBeInstanceOf(PermanentError);
    expect(tooLong).toMatchObject({ code: 'provider.rejected', details: { provider: 'embeddings', status: 400, providerCode: 'context_length_exceeded' } });
    const unauthorized = await client({ apiKey: 'sk-wrong' }).embed(['fine']).catch((e: unknown) => e);
    expect(unauthorized).toMatchObject({ code: 'provider.rejected', details: { status: 401, providerCode: 'invalid_api_key' } });
  });

  it('gets ProviderUnavailableError for injected failures, then vectors once the provider recovers', async () => {
    await embeddingsApp.inject({ method: 'PUT', url: '/_admin/faults', payload: { failNext: 2 } });
    const embeddings = client({ breaker: false });
    for (let i = 0; i < 2; i += 1) {
      await expect(embeddings.embed(['garden bed'])).rejects.toMatchObject({ name: 'ProviderUnavailableError', code: 'provider.unavailable', upstreamStatus: 503 });
    }
    expect((await embeddings.embed(['garden bed'])).vectors).toHaveLength(1);
  });
});
