import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { newId, PermanentError } from '@civildiy/common';
import { orderProcessed, type OrderOutcome } from '@civildiy/common/contracts';
import { createEnvelope, type Subscription } from '@civildiy/common/events';
import { KafkaEventBus } from '@civildiy/common/kafka';
import { kafkaSkipNote, kafkaTestBroker, uniquePrefix } from '@civildiy/common/testing';
import type { Overview } from '../src/contract.ts';
import { logger, path, startDashboard, type DashboardUnderTest } from './dashboard-under-test.ts';

// The dashboard reads event streams through the bus's admin port, whichever adapter runs: here the
// Kafka one, on the run's test broker (skipped, with the reason in the title, on a machine without
// Java outside CI; CI fails instead).
const kafka = await kafkaTestBroker(inject('kafkaTestBroker'));
const WAIT = { timeout: 60_000, interval: 200 };
/** A consumer's first join to a Kafka group can take several seconds on a loaded machine. */
const TEST_TIMEOUT_MS = 90_000;
const GROUP = 'dashboard-kafka-consumer';

let dashboard: DashboardUnderTest;
let subscription: Subscription;
/** Events whose handling fails for good (by envelope id) until taken out. */
const refused = new Set<string>();
const handled = new Set<string>();

const outcome = (): OrderOutcome => ({
  orderId: newId(),
  customerId: newId(),
  status: 'confirmed',
  totalCents: 990,
  currency: 'EUR',
  processedAt: new Date().toISOString(),
});

describe.skipIf(kafka.status === 'skip')(`event streams and event dead letters on Kafka ${kafkaSkipNote(kafka)}`.trim(), () => {
  beforeAll(async () => {
    if (kafka.status !== 'ready') throw new Error(kafka.reason);
    const prefix = uniquePrefix('dashboard-kafka');
    const bus = new KafkaEventBus({ brokers: kafka.brokers, prefix: `${prefix}.`, logger, sessionTimeoutMs: kafka.sessionTimeoutMs });
    dashboard = await startDashboard({ prefix, bus: { events: bus, transport: 'kafka' } });
    subscription = bus.subscribe({
      group: GROUP,
      events: [orderProcessed],
      handle: (envelope) => {
        if (refused.has(envelope.id)) throw new PermanentError('This order is unknown here', 'orders.unknown_order');
        handled.add(envelope.id);
      },
    });
    await subscription.ready;
  }, TEST_TIMEOUT_MS);

  afterAll(async () => {
    await subscription?.close();
    await dashboard?.close();
  });

  async function overview(): Promise<Overview> {
    return (await dashboard.call('GET', '/admin/overview', { token: dashboard.operatorToken })).body as Overview;
  }

  it('shows the topic on Kafka with its consumer group caught up and its dead letter counted', async () => {
    const good = [createEnvelope(orderProcessed, outcome()), createEnvelope(orderProcessed, outcome())];
    const bad = createEnvelope(orderProcessed, outcome());
    refused.add(bad.id);
    for (const envelope of [...good, bad]) await dashboard.bus.publishEnvelope(envelope);
    await expect.poll(() => good.every((envelope) => handled.has(envelope.id)), WAIT).toBe(true);
    await expect
      .poll(async () => {
        // The monitor's loop is not started here: each look is a fresh round.
        await dashboard.monitor.collect();
        const stream = (await overview()).streams.find((candidate) => candidate.topic === 'orders-events');
        return { transport: stream?.transport, deadLetters: stream?.deadLetters, lag: stream?.groups.find((group) => group.group === GROUP)?.lag };
      }, WAIT)
      .toEqual({ transport: 'kafka', deadLetters: 1, lag: 0 });
  }, TEST_TIMEOUT_MS);

  it('lists the event dead letter with its error, shows its payload, redrives it to its group once, and answers 409 to a second redrive', async () => {
    const list = await dashboard.call('GET', '/admin/dead-letters?kind=event&source=orders-events', { token: dashboard.operatorToken });
    expect(list.status).toBe(200);
    expect(list.body.items).toHaveLength(1);
    const [item] = list.body.items;
    expect(item).toMatchObject({ kind: 'event', source: 'orders-events', name: 'order.processed', group: GROUP, errorCode: 'orders.unknown_order' });

    const detail = await dashboard.call('GET', `/admin/dead-letters/${path(item.id)}`, { token: dashboard.operatorToken });
    expect(detail.status).toBe(200);
    expect(detail.body.contract.status).toBe('valid');
    const eventId = [...refused][0]!;
    expect(detail.body.payload).toMatchObject({ id: eventId, type: 'order.processed' });

    refused.clear();
    const redriven = await dashboard.call('POST', `/admin/dead-letters/${path(item.id)}/redrive`, { token: dashboard.operatorToken });
    expect(redriven.status).toBe(200);
    await expect.poll(() => handled.has(eventId), WAIT).toBe(true);

    const again = await dashboard.call('POST', `/admin/dead-letters/${path(item.id)}/redrive`, { token: dashboard.operatorToken });
    expect(again.status).toBe(409);
    expect(again.body.error.code).toBe('dashboard.already_redriven');
    expect((await dashboard.call('GET', '/admin/dead-letters?kind=event', { token: dashboard.operatorToken })).body.items).toEqual([]);
  }, TEST_TIMEOUT_MS);
});
