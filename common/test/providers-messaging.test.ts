import Fastify, { type FastifyInstance } from 'fastify';
import { Registry } from 'prom-client';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { PermanentError } from '../src/errors/index.ts';
import { MessagingClient, ProviderUnavailableError, type SendMessageRequest } from '../src/providers/index.ts';

// The client against a scripted stand-in written here (a common test must not import the
// mock-providers service); mock-providers/test/clients-contract.test.ts runs it against the real mock.

interface Step {
  status: number;
  body?: unknown;
  delayMs?: number;
}

const script: Step[] = [];
const received: { headers: Record<string, unknown>; body: unknown }[] = [];
let server: FastifyInstance;
let baseUrl: string;

const delivered: Step = { status: 200, body: { id: 'msg_1', status: 'delivered', channel: 'email', to: 'ada@example.com', deliveredAt: '2026-01-01T00:00:00.000Z' } };

beforeAll(async () => {
  // Requests still sleeping when the file ends must not hold close() for a keep-alive timeout.
  server = Fastify({ forceCloseConnections: true });
  server.post('/v1/messages', async (request, reply) => {
    received.push({ headers: request.headers, body: request.body });
    const step = script.shift() ?? delivered;
    if (step.delayMs) await new Promise((resolve) => setTimeout(resolve, step.delayMs));
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
});

const message = (overrides: Partial<SendMessageRequest> = {}): SendMessageRequest => ({
  idempotencyKey: 'notification-1',
  channel: 'email',
  to: 'ada@example.com',
  subject: 'Order confirmed',
  body: 'Thanks!',
  ...overrides,
});

const client = (options: Partial<ConstructorParameters<typeof MessagingClient>[0]> = {}) =>
  new MessagingClient({ baseUrl, timeoutMs: 1_000, metricsRegistry: new Registry(), ...options });

const failure = (promise: Promise<unknown>) => promise.then(() => undefined, (error: unknown) => error);

describe('MessagingClient (scripted stand-in server)', () => {
  it('returns the receipt, sending the idempotency key and the message only', async () => {
    expect(await client().send(message())).toEqual({ id: 'msg_1', status: 'delivered', deliveredAt: '2026-01-01T00:00:00.000Z' });
    expect(received[0]!.headers['idempotency-key']).toBe('notification-1');
    expect(received[0]!.body).toEqual({ channel: 'email', to: 'ada@example.com', subject: 'Order confirmed', body: 'Thanks!' });
  });

  it('throws PermanentError provider.recipient_rejected for 422 recipient_rejected', async () => {
    script.push({ status: 422, body: { error: { code: 'recipient_rejected', message: 'bounced', details: { reason: 'mailbox_unavailable' } } } });
    const error = await failure(client().send(message({ to: 'x@bounce.example' })));
    expect(error).toBeInstanceOf(PermanentError);
    expect(error).toMatchObject({ code: 'provider.recipient_rejected', details: { provider: 'messaging', status: 422, providerCode: 'recipient_rejected' } });
  });

  it('throws PermanentError provider.rejected for another 4xx', async () => {
    script.push({ status: 400, body: { error: { code: 'validation_failed', message: 'bad number' } } });
    expect(await failure(client().send(message({ channel: 'sms', to: '0151' })))).toMatchObject({ name: 'PermanentError', code: 'provider.rejected' });
  });

  it('throws PermanentError provider.bad_response for a 2xx body that is not a receipt', async () => {
    script.push({ status: 200, body: { id: 'msg_1', status: 'queued' } });
    expect(await failure(client().send(message()))).toMatchObject({ name: 'PermanentError', code: 'provider.bad_response' });
  });

  it('throws ProviderUnavailableError for a 5xx answer and for a timeout', async () => {
    script.push({ status: 503, body: { error: { code: 'provider_unavailable', message: 'down' } } });
    expect(await failure(client().send(message()))).toMatchObject({ name: 'ProviderUnavailableError', code: 'provider.unavailable', upstreamStatus: 503 });
    script.push({ ...delivered, delayMs: 500 });
    const error = await failure(client({ timeoutMs: 50 }).send(message()));
    expect(error).toBeInstanceOf(ProviderUnavailableError);
    expect((error as Error).message).toContain('within 50 ms');
  });

  it('opens its circuit after consecutive 5xx answers and then fails fast with provider.circuit_open', async () => {
    const messaging = client({ breaker: { consecutiveFailures: 2, halfOpenAfterMs: 60_000 } });
    const down: Step = { status: 500, body: { error: { code: 'provider_error', message: 'boom' } } };
    script.push(down, down);
    await failure(messaging.send(message()));
    await failure(messaging.send(message()));
    expect(messaging.circuitState).toBe('open');
    expect(await failure(messaging.send(message()))).toMatchObject({ code: 'provider.circuit_open' });
    expect(received).toHaveLength(2);
  });
});
