import Fastify, { type FastifyInstance } from 'fastify';
import { Registry } from 'prom-client';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { runWithContext } from '../src/context/index.ts';
import { PermanentError } from '../src/errors/index.ts';
import { PaymentsClient, ProviderUnavailableError, type ChargeRequest } from '../src/providers/index.ts';

// These tests run the client against a scripted stand-in written here (a common test must not import
// the mock-providers service); mock-providers/test/clients-contract.test.ts runs it against the real mock.

interface Step {
  status: number;
  body?: unknown;
  /** Answer only after this long (or never, if the client goes first). */
  delayMs?: number;
}

const script: Step[] = [];
const received: { headers: Record<string, unknown>; body: unknown }[] = [];
let clientsGone = 0;
let onClientGone: (() => void) | undefined;
let server: FastifyInstance;
let baseUrl: string;

const succeeded = (id = 'pay_1'): Step => ({ status: 200, body: { id, status: 'succeeded', amountCents: 100 } });
const unavailable: Step = { status: 503, body: { error: { code: 'provider_unavailable', message: 'down' } } };

beforeAll(async () => {
  // Requests still sleeping when the file ends must not hold close() for a keep-alive timeout.
  server = Fastify({ forceCloseConnections: true });
  server.post('/v1/payments', async (request, reply) => {
    received.push({ headers: request.headers, body: request.body });
    const step = script.shift() ?? succeeded();
    if (step.delayMs) {
      const clientLeft = await new Promise<boolean>((resolve) => {
        const timer = setTimeout(() => resolve(false), step.delayMs);
        reply.raw.once('close', () => {
          clearTimeout(timer);
          resolve(!reply.raw.writableFinished);
        });
      });
      if (clientLeft) {
        clientsGone += 1;
        onClientGone?.();
        return reply.hijack();
      }
    }
    return reply.status(step.status).send(step.body);
  });
  baseUrl = await server.listen({ port: 0, host: '127.0.0.1' });
});

afterAll(async () => {
  await server.close();
});

beforeEach(() => {
  script.length = 0;
  received.length = 0;
  clientsGone = 0;
});

const request = (overrides: Partial<ChargeRequest> = {}): ChargeRequest => ({
  idempotencyKey: 'order-1',
  amountCents: 4_990,
  currency: 'EUR',
  customerId: '0190a6f0-0000-7000-8000-000000000001',
  reference: 'order-1',
  ...overrides,
});

const client = (options: Partial<ConstructorParameters<typeof PaymentsClient>[0]> = {}) =>
  new PaymentsClient({ baseUrl, timeoutMs: 1_000, metricsRegistry: new Registry(), ...options });

const failure = (promise: Promise<unknown>) => promise.then(() => undefined, (error: unknown) => error);

describe('PaymentsClient (scripted stand-in server)', () => {
  it('returns succeeded with the payment id, sending the idempotency key, the correlation id and the payment only', async () => {
    script.push(succeeded('pay_abc'));
    const result = await runWithContext({ correlationId: 'corr-123' }, () => client().charge(request({ description: 'kit' })));
    expect(result).toEqual({ status: 'succeeded', paymentId: 'pay_abc' });
    expect(received[0]!.headers['idempotency-key']).toBe('order-1');
    expect(received[0]!.headers['x-request-id']).toBe('corr-123');
    expect(received[0]!.body).toEqual({ amountCents: 4_990, currency: 'EUR', customerId: '0190a6f0-0000-7000-8000-000000000001', reference: 'order-1', description: 'kit' });
  });

  it('returns a 402 decline as a result with the decline code and payment id, not an error', async () => {
    script.push({
      status: 402,
      body: { error: { code: 'payment_declined', message: 'no', details: { declineCode: 'card_declined' } }, payment: { id: 'pay_d', status: 'declined', declineCode: 'card_declined' } },
    });
    expect(await client().charge(request())).toEqual({ status: 'declined', paymentId: 'pay_d', declineCode: 'card_declined' });
  });

  it('returns a decline without payment id when the 402 carries no payment record', async () => {
    script.push({ status: 402, body: { error: { code: 'payment_declined', message: 'no', details: { declineCode: 'insufficient_funds' } } } });
    expect(await client().charge(request())).toEqual({ status: 'declined', declineCode: 'insufficient_funds' });
  });

  it('throws PermanentError provider.rejected for another 4xx (validation, idempotency key reused)', async () => {
    for (const [status, code] of [[400, 'validation_failed'], [409, 'idempotency_key_reused']] as const) {
      script.push({ status, body: { error: { code, message: 'refused' } } });
      const error = await failure(client().charge(request()));
      expect(error).toBeInstanceOf(PermanentError);
      expect(error).toMatchObject({ code: 'provider.rejected', details: { provider: 'payments', status, providerCode: code } });
    }
  });

  it('throws PermanentError provider.bad_response for a 2xx body that is not a payment', async () => {
    script.push({ status: 200, body: { hello: 'world' } });
    expect(await failure(client().charge(request()))).toMatchObject({ name: 'PermanentError', code: 'provider.bad_response' });
  });

  it('throws a retryable ProviderUnavailableError provider.unavailable for 5xx and 429', async () => {
    for (const status of [500, 502, 503, 429]) {
      script.push({ status, body: { error: { code: 'x', message: 'y' } } });
      const error = await failure(client({ breaker: false }).charge(request()));
      expect(error).toBeInstanceOf(ProviderUnavailableError);
      expect(error).toMatchObject({ code: 'provider.unavailable', retryable: true, upstreamStatus: status, statusCode: 503 });
    }
  });

  it('throws ProviderUnavailableError when the provider is slower than timeoutMs, and aborts the request', async () => {
    script.push({ ...succeeded(), delayMs: 10_000 });
    const serverSawAbort = new Promise<void>((resolve) => (onClientGone = resolve));
    const started = performance.now();
    const error = await failure(client({ timeoutMs: 100 }).charge(request()));
    expect(error).toBeInstanceOf(ProviderUnavailableError);
    expect((error as Error).message).toContain('within 100 ms');
    expect(performance.now() - started).toBeLessThan(2_000);
    await serverSawAbort;
    expect(clientsGone).toBe(1);
  });

  it('throws ProviderUnavailableError when the provider is unreachable', async () => {
    const closed = Fastify();
    const url = await closed.listen({ port: 0, host: '127.0.0.1' });
    await closed.close();
    const error = await failure(client({ baseUrl: url }).charge(request()));
    expect(error).toBeInstanceOf(ProviderUnavailableError);
    expect((error as Error).message).toContain('unreachable');
  });

  it("rethrows the caller's abort reason when the caller cancels, and does not count it against the provider", async () => {
    const payments = client({ breaker: { consecutiveFailures: 1, halfOpenAfterMs: 60_000 } });
    script.push({ ...succeeded(), delayMs: 10_000 });
    const controller = new AbortController();
    const serverSawAbort = new Promise<void>((resolve) => (onClientGone = resolve));
    setTimeout(() => controller.abort(new Error('deadline')), 50);
    const error = await failure(payments.charge(request({ signal: controller.signal })));
    expect(error).toEqual(new Error('deadline'));
    expect(error).not.toBeInstanceOf(ProviderUnavailableError);
    await serverSawAbort;
    expect(payments.circuitState).toBe('closed');
  });
});

describe('PaymentsClient circuit breaker (scripted stand-in server)', () => {
  const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

  it('opens after N consecutive failures, fails fast without calling, half-opens after halfOpenAfterMs and closes on success', async () => {
    const payments = client({ breaker: { consecutiveFailures: 3, halfOpenAfterMs: 200 } });
    script.push(unavailable, unavailable, unavailable);
    for (let i = 0; i < 3; i += 1) expect(await failure(payments.charge(request()))).toMatchObject({ code: 'provider.unavailable' });
    expect(payments.circuitState).toBe('open');

    const fastFail = await failure(payments.charge(request()));
    expect(fastFail).toBeInstanceOf(ProviderUnavailableError);
    expect(fastFail).toMatchObject({ code: 'provider.circuit_open', retryable: true });
    expect(received).toHaveLength(3);

    await sleep(250); // the breaker lets a trial call through only once halfOpenAfterMs has passed
    script.push(succeeded('pay_after'));
    expect(await payments.charge(request())).toEqual({ status: 'succeeded', paymentId: 'pay_after' });
    expect(payments.circuitState).toBe('closed');
    expect(received).toHaveLength(4);
  });

  it('opens again when the half-open trial call fails', async () => {
    const payments = client({ breaker: { consecutiveFailures: 1, halfOpenAfterMs: 100 } });
    script.push(unavailable);
    await failure(payments.charge(request()));
    expect(payments.circuitState).toBe('open');
    await sleep(150);
    script.push(unavailable);
    expect(await failure(payments.charge(request()))).toMatchObject({ code: 'provider.unavailable' });
    expect(payments.circuitState).toBe('open');
    expect(await failure(payments.charge(request()))).toMatchObject({ code: 'provider.circuit_open' });
    expect(received).toHaveLength(2);
  });

  it('does not count declines or other 4xx answers as failures', async () => {
    const payments = client({ breaker: { consecutiveFailures: 2, halfOpenAfterMs: 60_000 } });
    const decline: Step = { status: 402, body: { error: { code: 'payment_declined', message: 'no', details: { declineCode: 'card_declined' } } } };
    const invalid: Step = { status: 400, body: { error: { code: 'validation_failed', message: 'bad' } } };
    script.push(decline, invalid, decline, invalid, unavailable, decline, unavailable);
    for (let i = 0; i < 7; i += 1) await failure(payments.charge(request()));
    expect(payments.circuitState).toBe('closed');
    expect(received).toHaveLength(7);
  });
});
