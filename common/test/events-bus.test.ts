import { afterEach, describe, expect, it } from 'vitest';
import { deferred, eventually, Received, testBus, widgetCreated, widgetCreatedV2, widgetPainted, within } from './fixtures/events-harness.ts';

let harness: ReturnType<typeof testBus>;
afterEach(async () => {
  await harness.cleanup();
});

describe('RedisStreamsEventBus publish and subscribe', () => {
  it('shares the events of one group between its consumers, each event handled once', async () => {
    harness = testBus({ batchSize: 1 });
    const { bus } = harness;
    const received = new Received();
    const started = new Set<string>();
    const bothStarted = deferred();
    const subscribe = (consumer: string) =>
      bus.subscribe({
        group: 'notification-service',
        consumer,
        events: [widgetCreated],
        handle: async (e, ctx) => {
          started.add(consumer);
          if (started.size === 2) bothStarted.resolve();
          // Each consumer holds its first event until the other has one too: the work must be shared.
          await bothStarted.promise;
          received.add(e, ctx.delivery, consumer);
        },
      }).ready;
    await subscribe('consumer-a');
    await subscribe('consumer-b');

    const published = [];
    for (let n = 0; n < 10; n++) published.push(await bus.publish(widgetCreated, { widgetId: `w${n}`, n }));
    await received.until((items) => items.length >= 10, '10 events');
    const { items } = received;

    expect(items.map((item) => item.envelope.id).sort()).toEqual(published.map((e) => e.id).sort());
    expect(new Set(items.map((item) => item.consumer))).toEqual(new Set(['consumer-a', 'consumer-b']));
    expect(items.every((item) => item.delivery === 1)).toBe(true);
  });

  it('acknowledges and skips types it did not subscribe to, and versions it does not know (with a warning)', async () => {
    harness = testBus();
    const { bus } = harness;
    const received = new Received();
    await bus.subscribe({ group: 'feed-service', events: [widgetCreated], handle: (e) => received.add(e, 1) }).ready;

    await bus.publish(widgetPainted, { widgetId: 'w1', n: 1, colour: 'red' });
    const v2 = await bus.publish(widgetCreatedV2, { widgetId: 'w1', n: 2, size: 3 });
    const last = await bus.publish(widgetCreated, { widgetId: 'w1', n: 3 });
    await received.has(last.id);

    expect(received.ids()).toEqual([last.id]);
    const [group] = await bus.groups('widgets-events');
    expect(group).toMatchObject({ name: 'feed-service', pending: 0, lag: 0 });
    expect(harness.lines.find((l) => l.msg?.toString().includes('version not handled'))).toMatchObject({ level: 40, eventId: v2.id, version: 2 });
  });

  it('close() returns promptly while the consumer is blocked in a long read', async () => {
    harness = testBus({ blockMs: 60_000 });
    const { bus, redis } = harness;
    const subscription = bus.subscribe({ group: 'idle-service', consumer: 'blocked-one', events: [widgetCreated], handle: () => {} });
    await subscription.ready;
    // Wait until Redis reports the consumer's connection blocked in XREADGROUP.
    await eventually(
      async () => String(await redis.call('CLIENT', 'LIST')).split('\n'),
      (clients) => clients.some((c) => c.includes('name=civildiy-events:idle-service:blocked-one') && c.includes('cmd=xreadgroup')),
      'the blocking read',
    );

    const started = Date.now();
    await subscription.close();
    expect(Date.now() - started).toBeLessThan(1_000);
    await bus.close();
  });

  it('counts published and consumed events and reports consumer lag at scrape time', async () => {
    harness = testBus();
    const { bus, registry } = harness;
    // A second bus on the same registry reuses the metrics instead of throwing.
    const second = harness.another();
    const received = new Received();
    const gate = deferred();
    const busy = deferred();
    await bus.subscribe({
      group: 'metrics-service',
      events: [widgetCreated],
      handle: async (e) => {
        busy.resolve();
        await gate.promise;
        received.add(e, 1);
      },
    }).ready;
    await second.publish(widgetCreated, { widgetId: 'w1', n: 1 });
    await bus.publish(widgetCreated, { widgetId: 'w2', n: 2 });
    const third = await bus.publish(widgetCreated, { widgetId: 'w3', n: 3 });

    // The first event is held by the handler: the other two are not delivered yet.
    await within(busy.promise, 5_000, 'the first delivery');
    const whileBusy = await registry.metrics();
    expect(whileBusy).toMatch(/civildiy_event_consumer_lag\{topic="widgets-events",group="metrics-service"\} 2/);
    expect(whileBusy).toContain('civildiy_event_consumer_pending{topic="widgets-events",group="metrics-service"} 1');
    expect(whileBusy).toContain('civildiy_events_published_total{topic="widgets-events",type="widget.created"} 3');

    gate.resolve();
    await received.has(third.id);
    // Published after the handler finished its last event, so that event's ack is counted.
    const barrier = await bus.publish(widgetCreated, { widgetId: 'w4', n: 4 });
    await received.has(barrier.id);
    const after = await registry.metrics();
    expect(after).toMatch(/civildiy_events_consumed_total\{topic="widgets-events",type="widget.created",group="metrics-service",outcome="ok"\} [34]/);
    expect(after).toContain('civildiy_event_consumer_lag{topic="widgets-events",group="metrics-service"} 0');
    expect(after).toContain('civildiy_event_handler_duration_seconds_count{topic="widgets-events",type="widget.created",group="metrics-service"}');
  });
});
