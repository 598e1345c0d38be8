import { Redis } from 'ioredis';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createLogger, derivedId, newId } from '@civildiy/common';
import { orderProcessed, processOrder, type OrderPayload } from '@civildiy/common/contracts';
import { EventEnvelope, RedisStreamsEventBus, type Subscription } from '@civildiy/common/events';
import { PaymentsClient } from '@civildiy/common/providers';
import { TaskClient, TaskFailedError, TaskWorker, jobOptionsFor, type AttemptRecord, type TaskJobData } from '@civildiy/common/tasks';
import { registerHandlers } from '../src/handlers.ts';
import { providerCall, startMockProviders, type MockProviders, REDIS_URL, removeRedisPrefix, uniquePrefix } from '@civildiy/common/testing';

const logger = createLogger({ service: 'worker', level: process.env.TEST_LOG_LEVEL ?? 'silent' });

let providers: MockProviders;
let redis: Redis;

beforeAll(async () => {
  providers = await startMockProviders();
  redis = new Redis(REDIS_URL, { maxRetriesPerRequest: null });
});

afterEach(async () => {
  await setPaymentFaults({});
});

afterAll(async () => {
  await redis?.quit();
  await providers?.stop();
});

interface ProviderPayment {
  id: string;
  status: 'succeeded' | 'declined';
  amountCents: number;
  reference: string;
}

interface PaymentStats {
  callsReceived: number;
  chargesCreated: number;
  declines: number;
}

async function setPaymentFaults(faults: Record<string, number>): Promise<void> {
  await providerCall(`${providers.paymentsUrl}/_admin/faults`, { method: 'PUT', body: faults });
}

async function paymentsFor(orderId: string): Promise<ProviderPayment[]> {
  return (await providerCall<{ items: ProviderPayment[] }>(`${providers.paymentsUrl}/v1/payments?reference=${orderId}`)).items;
}

async function paymentStats(): Promise<PaymentStats> {
  return providerCall(`${providers.paymentsUrl}/_admin/stats`);
}

/** The provider's payment id for an idempotency key (the mock derives it from the key). */
function paymentIdFor(idempotencyKey: string): string {
  return `pay_${derivedId('mock-payment', idempotencyKey).replaceAll('-', '')}`;
}

/** An order as order-service enqueues it: lines with their price snapshots. */
function order(lines: { quantity: number; unitPriceCents: number }[]): OrderPayload {
  return {
    orderId: newId(),
    customerId: newId(),
    currency: 'EUR',
    lines: lines.map((line, i) => ({ sku: `KIT-TEST-0${i + 1}`, name: `Test kit ${i + 1}`, ...line })),
  };
}

/** The running orders.process stack of one Redis prefix: a client, a worker and the bus its handler publishes to. */
interface Stack {
  prefix: string;
  bus: RedisStreamsEventBus;
  client: TaskClient;
  worker: TaskWorker;
  payments: PaymentsClient;
  close(): Promise<void>;
}

async function startStack(name: string, breaker?: { consecutiveFailures: number; halfOpenAfterMs: number }): Promise<Stack> {
  const prefix = uniquePrefix(name);
  const bus = new RedisStreamsEventBus({ connection: REDIS_URL, prefix: `${prefix}:`, logger });
  const client = new TaskClient({ connection: REDIS_URL, prefix, logger });
  const worker = new TaskWorker({ connection: REDIS_URL, prefix, queues: [processOrder.queue], concurrency: 5, logger });
  const payments = new PaymentsClient({ baseUrl: providers.paymentsUrl, timeoutMs: 5_000, logger, ...(breaker ? { breaker } : {}) });
  registerHandlers(worker, { logger, orders: { payments, events: bus } });
  await worker.start();
  return {
    prefix,
    bus,
    client,
    worker,
    payments,
    async close() {
      await worker.close();
      await client.close();
      await bus.close();
      await removeRedisPrefix(prefix);
    },
  };
}

/** Every `order.processed` envelope of `orderId` on the bus's stream, oldest first. */
async function processedEvents(stack: Stack, orderId: string): Promise<EventEnvelope[]> {
  const entries = (await redis.xrange(stack.bus.streamKey(orderProcessed.topic), '-', '+')) as [string, string[]][];
  return entries
    .map(([, fields]) => EventEnvelope.parse(JSON.parse(fields[fields.indexOf('envelope') + 1]!)))
    .filter((envelope) => envelope.type === orderProcessed.type && envelope.key === orderId);
}

/** The attempt errors the task runtime recorded in the job's log, oldest first. */
async function attemptLog(stack: Stack, jobId: string): Promise<AttemptRecord[]> {
  const { logs } = await stack.client.queue(processOrder.queue).getJobLogs(jobId);
  return logs.map((line) => JSON.parse(line) as AttemptRecord);
}

describe('orders.process on a real worker against the real payments provider', () => {
  let stack: Stack;
  let observer: Subscription;
  const received = new Map<string, EventEnvelope[]>();
  const waiters = new Map<string, (envelope: EventEnvelope) => void>();

  beforeAll(async () => {
    stack = await startStack('worker-orders');
    // A consumer of order.processed, as order-service is one.
    observer = stack.bus.subscribe({
      group: 'worker-test-observer',
      events: [orderProcessed],
      handle: (envelope) => {
        received.set(envelope.key, [...(received.get(envelope.key) ?? []), envelope]);
        waiters.get(envelope.key)?.(envelope);
      },
    });
    await observer.ready;
  });

  afterAll(async () => {
    await observer?.close();
    await stack?.close();
  });

  /** Resolves with the first order.processed a subscriber receives for `orderId`. */
  function nextEventFor(orderId: string): Promise<EventEnvelope> {
    const seen = received.get(orderId)?.[0];
    if (seen) return Promise.resolve(seen);
    return new Promise((resolve) => waiters.set(orderId, resolve));
  }

  it('confirms a payable order, charges it once and publishes one order.processed with the order correlation id', async () => {
    const payload = order([{ quantity: 2, unitPriceCents: 4900 }, { quantity: 1, unitPriceCents: 3950 }]);
    const correlationId = `req-${newId()}`;
    const ref = await stack.client.enqueue(processOrder, payload, { idempotencyKey: payload.orderId, context: { correlationId } });
    const event = nextEventFor(payload.orderId);
    const outcome = await ref.result({ timeoutMs: 20_000 });

    expect(outcome).toMatchObject({
      orderId: payload.orderId,
      customerId: payload.customerId,
      status: 'confirmed',
      totalCents: 2 * 4900 + 3950,
      currency: 'EUR',
      paymentId: paymentIdFor(payload.orderId),
    });
    expect(outcome.reason).toBeUndefined();

    const envelope = await event;
    expect(envelope).toMatchObject({
      id: derivedId('event', orderProcessed.type, payload.orderId),
      type: 'order.processed',
      topic: 'orders-events',
      key: payload.orderId,
      correlationId,
      causationId: ref.id,
    });
    expect(envelope.data).toEqual(outcome);
    expect(await processedEvents(stack, payload.orderId)).toHaveLength(1);

    const payments = await paymentsFor(payload.orderId);
    expect(payments).toEqual([expect.objectContaining({ id: outcome.paymentId, status: 'succeeded', amountCents: 13_750 })]);
    expect(await attemptLog(stack, ref.id)).toEqual([]);
  });

  it.each([
    ['an order over €2,000', 'amount_over_limit', () => order([{ quantity: 7, unitPriceCents: 32_900 }])],
    ['a customer whose card is declined', 'card_declined', () => ({ ...order([{ quantity: 1, unitPriceCents: 4900 }]), customerId: '0190a6f0-0000-7000-8000-00000000dead' })],
  ])('rejects %s with reason %s, once, without retrying, and publishes one event', async (_case, reason, make) => {
    const payload = make();
    const before = await paymentStats();
    const ref = await stack.client.enqueue(processOrder, payload, { idempotencyKey: payload.orderId });
    const outcome = await ref.result({ timeoutMs: 20_000 });

    expect(outcome).toMatchObject({ orderId: payload.orderId, status: 'rejected', reason, paymentId: paymentIdFor(payload.orderId) });
    const job = await stack.client.queue(processOrder.queue).getJob(ref.id);
    expect(job?.attemptsMade).toBe(1);
    expect(await attemptLog(stack, ref.id)).toEqual([]);
    const after = await paymentStats();
    expect(after.callsReceived - before.callsReceived).toBe(1);
    expect(after.declines - before.declines).toBe(1);
    expect(after.chargesCreated).toBe(before.chargesCreated);

    expect((await nextEventFor(payload.orderId)).data).toEqual(outcome);
    const events = await processedEvents(stack, payload.orderId);
    expect(events).toHaveLength(1);
    expect(events[0]!.data).toMatchObject({ status: 'rejected', reason });
  });

  it('when the payments provider fails twice, the order is still confirmed on attempt 3 and charged once', async () => {
    const payload = order([{ quantity: 1, unitPriceCents: 2900 }]);
    await setPaymentFaults({ failNext: 2 });
    const before = await paymentStats();
    const ref = await stack.client.enqueue(processOrder, payload, { idempotencyKey: payload.orderId });
    const outcome = await ref.result({ timeoutMs: 20_000 });

    expect(outcome).toMatchObject({ status: 'confirmed', paymentId: paymentIdFor(payload.orderId) });
    const job = await stack.client.queue(processOrder.queue).getJob(ref.id);
    expect(job?.attemptsMade).toBe(3);
    expect((await attemptLog(stack, ref.id)).map(({ attempt, code, final }) => ({ attempt, code, final }))).toEqual([
      { attempt: 1, code: 'provider.unavailable', final: false },
      { attempt: 2, code: 'provider.unavailable', final: false },
    ]);
    const after = await paymentStats();
    expect(after.callsReceived - before.callsReceived).toBe(3);
    expect(after.chargesCreated - before.chargesCreated).toBe(1);
    expect(await paymentsFor(payload.orderId)).toHaveLength(1);
    expect(await processedEvents(stack, payload.orderId)).toHaveLength(1);
  });

  it('an order run twice charges once and publishes the same event id both times, so consumers see one event', async () => {
    const payload = order([{ quantity: 3, unitPriceCents: 1500 }]);
    const before = await paymentStats();
    // No idempotency key: two jobs, as a redelivered or re-enqueued task would be.
    const first = await (await stack.client.enqueue(processOrder, payload)).result({ timeoutMs: 20_000 });
    const second = await (await stack.client.enqueue(processOrder, payload)).result({ timeoutMs: 20_000 });

    expect(second.paymentId).toBe(first.paymentId);
    expect((await paymentStats()).chargesCreated - before.chargesCreated).toBe(1);
    const events = await processedEvents(stack, payload.orderId);
    expect(events).toHaveLength(2);
    expect(new Set(events.map((event) => event.id))).toEqual(new Set([derivedId('event', orderProcessed.type, payload.orderId)]));
  });

  it('an input that fails the schema is dead-lettered at once, without retry and without calling the provider', async () => {
    const before = await paymentStats();
    const data: TaskJobData = {
      input: { orderId: 'not-a-uuid', customerId: newId(), currency: 'USD', lines: [] },
      context: { correlationId: `req-${newId()}` },
    };
    const job = await stack.client.queue(processOrder.queue).add(processOrder.name, data, jobOptionsFor(processOrder));
    const failure = await stack.client
      .ref(processOrder, job.id!)
      .result({ timeoutMs: 20_000 })
      .catch((error: unknown) => error);

    expect(failure).toBeInstanceOf(TaskFailedError);
    expect(failure).toMatchObject({ code: 'tasks.invalid_input', attemptsMade: 1 });
    const letter = await stack.client.deadLetters.get(processOrder.queue, job.id!);
    expect(letter).toMatchObject({ task: 'orders.process', input: data.input, context: data.context, attemptsMade: 1 });
    expect(letter!.attempts.map(({ attempt, code, final }) => ({ attempt, code, final }))).toEqual([{ attempt: 1, code: 'tasks.invalid_input', final: true }]);
    expect((await paymentStats()).callsReceived).toBe(before.callsReceived);
  });
});

describe('orders.process with a circuit breaker on the payments provider', () => {
  // Two consecutive failures open the circuit; it lets a trial call through after 3 s. With the
  // task's backoff (500 ms doubling, jittered), attempt 3 comes 0.5–1 s after the circuit opened and
  // fails fast; attempt 5 comes at least 3.5 s after, when the trial call is allowed.
  const breaker = { consecutiveFailures: 2, halfOpenAfterMs: 3_000 };
  let stack: Stack;

  beforeAll(async () => {
    stack = await startStack('worker-breaker', breaker);
  });

  afterAll(async () => {
    await stack?.close();
  });

  it('opens after consecutive provider failures; while open, the job waits without using attempts, and it is confirmed once the provider is back', async () => {
    const payload = order([{ quantity: 1, unitPriceCents: 9900 }]);
    await setPaymentFaults({ failNext: 2 });
    const before = await paymentStats();
    const ref = await stack.client.enqueue(processOrder, payload, { idempotencyKey: payload.orderId });
    const outcome = await ref.result({ timeoutMs: 25_000 });

    expect(outcome).toMatchObject({ status: 'confirmed', paymentId: paymentIdFor(payload.orderId) });
    // Two counted failures; the runs that met the open circuit were deferred, not counted as attempts.
    const log = await attemptLog(stack, ref.id);
    expect(log.map(({ attempt, code, final }) => ({ attempt, code, final }))).toEqual([
      { attempt: 1, code: 'provider.unavailable', final: false },
      { attempt: 2, code: 'provider.unavailable', final: false },
    ]);
    // Attempts that met the open circuit never reached the provider: two failures and the successful trial.
    const after = await paymentStats();
    expect(after.callsReceived - before.callsReceived).toBe(3);
    expect(after.chargesCreated - before.chargesCreated).toBe(1);
    expect(await stack.client.deadLetters.get(processOrder.queue, ref.id)).toBeUndefined();
    expect(stack.payments.circuitState).toBe('closed');
  });
});
