import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Registry } from 'prom-client';
import { newId, PermanentError } from '@civildiy/common';
import { orderProcessed, sendNotification, type OrderOutcome } from '@civildiy/common/contracts';
import { createEnvelope, type EventEnvelope, type Subscription } from '@civildiy/common/events';
import { jobOptionsFor, TaskFailedError, TaskWorker } from '@civildiy/common/tasks';
import { REDIS_URL } from '@civildiy/common/testing';
import { logger, path, startDashboard, type DashboardUnderTest } from './dashboard-under-test.ts';

const WAIT = { timeout: 15_000, interval: 50 };
const GROUP = 'dashboard-test-consumer';

let dashboard: DashboardUnderTest;
let worker: TaskWorker;
let subscription: Subscription;
/** While true, the task handler and the event handler fail for good. */
let failing = true;
const handledEvents = new Map<string, () => void>();

const notification = () => ({ notificationId: newId(), userId: newId(), template: 'welcome' as const, data: {} });
const outcome = (): OrderOutcome => ({
  orderId: newId(),
  customerId: newId(),
  status: 'confirmed',
  totalCents: 1_250,
  currency: 'EUR',
  processedAt: new Date().toISOString(),
});

beforeAll(async () => {
  dashboard = await startDashboard();
  worker = new TaskWorker({ connection: REDIS_URL, prefix: dashboard.prefix, queues: ['notifications'], logger, registry: new Registry(), name: 'test-worker-1' });
  worker.handle(sendNotification, (input) => {
    if (failing) throw new PermanentError('The mailbox does not exist', 'notifications.mailbox_unknown');
    return { notificationId: input.notificationId, status: 'delivered' as const, providerMessageId: 'm-1', channel: 'email' as const, deliveredAt: new Date().toISOString() };
  });
  await worker.start();
  subscription = dashboard.bus.subscribe({
    group: GROUP,
    events: [orderProcessed],
    handle: (envelope) => {
      if (failing) throw new PermanentError('This order is unknown here', 'orders.unknown_order');
      handledEvents.get(envelope.id)?.();
    },
  });
  await subscription.ready;
});

afterAll(async () => {
  await subscription?.close();
  await worker?.close();
  await dashboard?.close();
});

/** Enqueues a notification that fails for good; resolves with its dead letter id once the job failed. */
async function taskDeadLetter(): Promise<string> {
  const ref = await dashboard.tasks.enqueue(sendNotification, notification(), { context: { correlationId: `corr-${newId()}` } });
  await expect(ref.result({ timeoutMs: 10_000 })).rejects.toBeInstanceOf(TaskFailedError);
  return `task:notifications:${ref.id}`;
}

/** Publishes an order outcome the test consumer fails for good; resolves with its dead letter id once the bus holds it. */
async function eventDeadLetter(envelope: EventEnvelope = createEnvelope(orderProcessed, outcome())): Promise<{ id: string; eventId: string }> {
  await dashboard.bus.publishEnvelope(envelope);
  let id: string | undefined;
  await expect
    .poll(async () => {
      const letter = (await dashboard.bus.deadLetters('orders-events', { limit: 1_000 })).find((candidate) => candidate.envelope?.id === envelope.id);
      id = letter && `event:orders-events:${letter.id}`;
      return id;
    }, WAIT)
    .toBeDefined();
  return { id: id!, eventId: envelope.id };
}

describe('task dead letters', () => {
  it('a task that failed for good is listed, and shown with its payload, contract check and every attempt', async () => {
    const id = await taskDeadLetter();
    const list = await dashboard.call('GET', '/admin/dead-letters?kind=task', { token: dashboard.operatorToken });
    expect(list.status).toBe(200);
    expect(list.body.items).toContainEqual(
      expect.objectContaining({ id, kind: 'task', source: 'notifications', name: 'notifications.send', group: null, errorCode: 'notifications.mailbox_unknown', attempts: 1 }),
    );

    const detail = await dashboard.call('GET', `/admin/dead-letters/${path(id)}`, { token: dashboard.operatorToken });
    expect(detail.status).toBe(200);
    expect(detail.body).toMatchObject({
      id,
      errorCode: 'notifications.mailbox_unknown',
      errorMessage: 'The mailbox does not exist',
      contract: { status: 'valid', issues: [] },
      payload: { template: 'welcome' },
      attemptsLog: [{ attempt: 1, worker: 'test-worker-1', code: 'notifications.mailbox_unknown', message: 'The mailbox does not exist' }],
    });
    expect(detail.body.correlationId).toMatch(/^corr-/);
  });

  it('filters by error code and source', async () => {
    const id = await taskDeadLetter();
    const byCode = await dashboard.call('GET', '/admin/dead-letters?code=notifications.mailbox_unknown', { token: dashboard.operatorToken });
    expect(byCode.body.items.map((item: { id: string }) => item.id)).toContain(id);
    const otherCode = await dashboard.call('GET', '/admin/dead-letters?code=nothing.like.it', { token: dashboard.operatorToken });
    expect(otherCode.body).toEqual({ total: 0, items: [] });
    const otherSource = await dashboard.call('GET', '/admin/dead-letters?source=orders', { token: dashboard.operatorToken });
    expect(otherSource.body.items.map((item: { id: string }) => item.id)).not.toContain(id);
  });

  it('a redriven task runs again and completes; a second redrive is 409 dashboard.already_redriven', async () => {
    const id = await taskDeadLetter();
    const jobId = id.split(':')[2]!;
    failing = false;
    try {
      const redrive = await dashboard.call('POST', `/admin/dead-letters/${path(id)}/redrive`, { token: dashboard.operatorToken });
      expect(redrive).toEqual({ status: 200, body: { redriven: [id], notFound: [], alreadyRedriven: [] } });
      await expect(dashboard.tasks.ref(sendNotification, jobId).result({ timeoutMs: 10_000 })).resolves.toMatchObject({ status: 'delivered' });
    } finally {
      failing = true;
    }
    const again = await dashboard.call('POST', `/admin/dead-letters/${path(id)}/redrive`, { token: dashboard.operatorToken });
    expect(again.status).toBe(409);
    expect(again.body.error.code).toBe('dashboard.already_redriven');
    expect((await dashboard.call('GET', `/admin/dead-letters/${path(id)}`, { token: dashboard.operatorToken })).status).toBe(404);
  });

  it('a task whose payload no longer matches its contract is shown with the issues, not crashed on', async () => {
    const job = await dashboard.tasks.queue('notifications').add(
      sendNotification.name,
      { input: { notificationId: 'not-a-uuid', template: 'postcard' }, context: { correlationId: 'corr-bad' } },
      jobOptionsFor(sendNotification),
    );
    const id = `task:notifications:${job.id}`;
    await expect(dashboard.tasks.ref(sendNotification, job.id!).result({ timeoutMs: 10_000 })).rejects.toMatchObject({ code: 'tasks.invalid_input' });
    const detail = await dashboard.call('GET', `/admin/dead-letters/${path(id)}`, { token: dashboard.operatorToken });
    expect(detail.status).toBe(200);
    expect(detail.body.errorCode).toBe('tasks.invalid_input');
    expect(detail.body.contract.status).toBe('invalid');
    expect(detail.body.contract.issues.join('\n')).toMatch(/notificationId/);
    expect(detail.body.contract.issues.join('\n')).toMatch(/template/);
  });
});

describe('event dead letters', () => {
  it('an event a consumer failed for good is listed, shown, redriven to that consumer and handled; then 409', async () => {
    const { id, eventId } = await eventDeadLetter();
    const detail = await dashboard.call('GET', `/admin/dead-letters/${path(id)}`, { token: dashboard.operatorToken });
    expect(detail.body).toMatchObject({
      id,
      kind: 'event',
      source: 'orders-events',
      name: 'order.processed',
      group: GROUP,
      errorCode: 'orders.unknown_order',
      contract: { status: 'valid' },
      payload: { id: eventId, type: 'order.processed', data: { status: 'confirmed' } },
      attemptsLog: [{ attempt: 1, code: 'orders.unknown_order', message: 'This order is unknown here' }],
    });
    expect(detail.body.attemptsLog[0].worker).toBe(subscription.consumer);

    const handled = new Promise<void>((resolve) => handledEvents.set(eventId, resolve));
    failing = false;
    try {
      const redrive = await dashboard.call('POST', `/admin/dead-letters/${path(id)}/redrive`, { token: dashboard.operatorToken });
      expect(redrive.status).toBe(200);
      await handled;
    } finally {
      failing = true;
    }
    const again = await dashboard.call('POST', `/admin/dead-letters/${path(id)}/redrive`, { token: dashboard.operatorToken });
    expect(again.status).toBe(409);
    expect(again.body.error.code).toBe('dashboard.already_redriven');
  });

  it('an event whose data no longer matches its contract is shown as invalid', async () => {
    const envelope = { ...createEnvelope(orderProcessed, outcome()), data: { orderId: 'not-a-uuid', status: 'shipped' } };
    const { id } = await eventDeadLetter(envelope);
    const detail = await dashboard.call('GET', `/admin/dead-letters/${path(id)}`, { token: dashboard.operatorToken });
    expect(detail.status).toBe(200);
    expect(detail.body.errorCode).toBe('events.invalid_data');
    expect(detail.body.contract.status).toBe('invalid');
    expect(detail.body.contract.issues.join('\n')).toMatch(/orderId/);
  });
});

describe('bulk redrive, discard and errors', () => {
  it('redrives the selected ids and says which were unknown', async () => {
    const [first, second] = [await taskDeadLetter(), await taskDeadLetter()];
    const unknown = `task:notifications:${newId()}`;
    const result = await dashboard.call('POST', '/admin/dead-letters/redrive', { token: dashboard.operatorToken, body: { ids: [first, second, unknown] } });
    expect(result.status).toBe(200);
    expect(result.body).toEqual({ redriven: [first, second], notFound: [unknown], alreadyRedriven: [] });
    // They fail again (the handler still fails): dead letters once more, redrivable again.
    for (const id of [first!, second!]) {
      await expect(dashboard.tasks.ref(sendNotification, id.split(':')[2]!).result({ timeoutMs: 10_000 })).rejects.toBeInstanceOf(TaskFailedError);
    }
  });

  it('redrives every dead letter of a kind', async () => {
    await taskDeadLetter();
    const before = await dashboard.call('GET', '/admin/dead-letters?kind=task&limit=500', { token: dashboard.operatorToken });
    const result = await dashboard.call('POST', '/admin/dead-letters/redrive', { token: dashboard.operatorToken, body: { kind: 'task', source: 'notifications' } });
    expect(result.status).toBe(200);
    expect(result.body.redriven.length).toBeGreaterThanOrEqual(1);
    expect(new Set(result.body.redriven)).toEqual(new Set(before.body.items.map((item: { id: string }) => item.id)));
  });

  it('a discard needs the confirmation body naming the dead letter; then it is gone', async () => {
    const id = await taskDeadLetter();
    const url = `/admin/dead-letters/${path(id)}/discard`;
    const missing = await dashboard.call('POST', url, { token: dashboard.operatorToken, body: {} });
    expect(missing.status).toBe(400);
    expect(missing.body.error.code).toBe('validation_failed');
    const other = await dashboard.call('POST', url, { token: dashboard.operatorToken, body: { confirm: `task:notifications:${newId()}` } });
    expect(other.status).toBe(400);
    expect(other.body.error.code).toBe('dashboard.confirmation_mismatch');
    const done = await dashboard.call('POST', url, { token: dashboard.operatorToken, body: { confirm: id } });
    expect(done).toEqual({ status: 200, body: { discarded: id } });
    expect((await dashboard.call('GET', `/admin/dead-letters/${path(id)}`, { token: dashboard.operatorToken })).status).toBe(404);
    const twice = await dashboard.call('POST', url, { token: dashboard.operatorToken, body: { confirm: id } });
    expect(twice.status).toBe(404);
  });

  it('an unknown id is 404 dashboard.dead_letter_not_found, a malformed one 400', async () => {
    for (const id of [`task:notifications:${newId()}`, 'event:orders-events:1-0', `task:no-such-queue:${newId()}`]) {
      const shown = await dashboard.call('GET', `/admin/dead-letters/${path(id)}`, { token: dashboard.operatorToken });
      expect(shown.status, id).toBe(404);
      expect(shown.body.error.code).toBe('dashboard.dead_letter_not_found');
      const redriven = await dashboard.call('POST', `/admin/dead-letters/${path(id)}/redrive`, { token: dashboard.operatorToken });
      expect(redriven.status, id).toBe(404);
      expect(redriven.body.error.code).toBe('dashboard.dead_letter_not_found');
    }
    for (const id of ['orders:123', 'job:orders:1', 'task:orders']) {
      const malformed = await dashboard.call('GET', `/admin/dead-letters/${path(id)}`, { token: dashboard.operatorToken });
      expect(malformed.status, id).toBe(400);
      expect(malformed.body.error.code).toBe('validation_failed');
    }
    const badBody = await dashboard.call('POST', '/admin/dead-letters/redrive', { token: dashboard.operatorToken, body: { ids: ['nope'] } });
    expect(badBody.status).toBe(400);
  });

  it('every action is in the activity list, with the operator, newest first', async () => {
    const id = await taskDeadLetter();
    await dashboard.call('POST', `/admin/dead-letters/${path(id)}/discard`, { token: dashboard.operatorToken, body: { confirm: id } });
    const { status, body } = await dashboard.call('GET', '/admin/activity?limit=5', { token: dashboard.operatorToken });
    expect(status).toBe(200);
    expect(body.items[0]).toMatchObject({
      actor: { id: dashboard.operatorId, username: 'ops-alice', via: 'dashboard' },
      action: 'dead_letter.discard',
      target: id,
      outcome: 'done',
    });
    const outcomes = (await dashboard.call('GET', '/admin/activity?limit=1000', { token: dashboard.operatorToken })).body.items.map(
      (item: { outcome: string }) => item.outcome,
    );
    expect(outcomes).toEqual(expect.arrayContaining(['done', 'not_found', 'already_redriven']));
  });
});
