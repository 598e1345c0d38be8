import { afterEach, describe, expect, it } from 'vitest';
import { currentContext, runWithContext, type RequestContext } from '../src/context/index.ts';
import { isEvent, type EventEnvelope } from '../src/events/index.ts';
import { deferred, eventually, gadgetShipped, Received, testBus, widgetCreated, widgetCreatedV2, widgetPainted, within } from './fixtures/events-harness.ts';

let harness: ReturnType<typeof testBus>;
afterEach(async () => {
  await harness.cleanup();
});

describe('RedisStreamsEventBus publish and subscribe', () => {
  it('delivers the published envelope to the handler inside the publisher’s correlation context', async () => {
    harness = testBus();
    const { bus } = harness;
    const seen = deferred<{ envelope: EventEnvelope; context: RequestContext | undefined; delivery: number }>();
    await bus.subscribe({
      group: 'feed-service',
      events: [widgetCreated],
      handle: (envelope, ctx) => {
        ctx.logger.info('handling widget');
        seen.resolve({ envelope, context: currentContext(), delivery: ctx.delivery });
      },
    }).ready;

    const published = await runWithContext({ correlationId: 'req-42', userId: 'user-7' }, () =>
      bus.publish(widgetCreated, { widgetId: 'w1', n: 1 }),
    );
    const { envelope, context, delivery } = await within(seen.promise, 5_000, 'the event');

    expect(envelope).toEqual(published);
    expect(envelope).toMatchObject({ type: 'widget.created', version: 1, topic: 'widgets-events', key: 'w1', correlationId: 'req-42', actor: 'user-7' });
    expect(context).toEqual({ correlationId: 'req-42', userId: 'user-7', causationId: published.id });
    expect(delivery).toBe(1);
    const line = harness.lines.find((l) => l.msg === 'handling widget');
    expect(line).toMatchObject({ eventType: 'widget.created', eventId: published.id, group: 'feed-service', topic: 'widgets-events', delivery: 1 });
  });

  it('gives every group every event, and the handler the union of the subscribed types, data parsed', async () => {
    harness = testBus();
    const { bus } = harness;
    const feed = new Received();
    const search = new Received();
    await bus.subscribe({ group: 'feed-service', events: [widgetCreated, widgetPainted], handle: (e) => feed.add(e, 1) }).ready;
    await bus.subscribe({
      group: 'search-service',
      events: [widgetCreated, widgetPainted],
      handle: (e) => {
        // Narrowing through the contract, not a string.
        if (isEvent(widgetPainted, e)) expect(typeof e.data.colour).toBe('string');
        search.add(e, 1);
      },
    }).ready;

    const a = await bus.publish(widgetCreated, { widgetId: 'w1', n: 1 });
    const b = await bus.publish(widgetPainted, { widgetId: 'w1', n: 2, colour: 'red' });
    await Promise.all([feed.until((items) => items.length === 2), search.until((items) => items.length === 2)]);

    expect(feed.ids()).toEqual([a.id, b.id]);
    expect(search.ids()).toEqual([a.id, b.id]);
  });

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

  it('consumes several topics in one subscription', async () => {
    harness = testBus();
    const { bus } = harness;
    const received = new Received();
    const subscription = bus.subscribe({ group: 'dashboard', events: [widgetCreated, gadgetShipped], handle: (e) => received.add(e, 1) });
    await subscription.ready;
    const a = await bus.publish(widgetCreated, { widgetId: 'w1', n: 1 });
    const b = await bus.publish(gadgetShipped, { gadgetId: 'g1' });
    await received.until((items) => items.length === 2);

    expect(subscription.topics).toEqual(['widgets-events', 'gadgets-events']);
    expect(received.ids().sort()).toEqual([a.id, b.id].sort());
  });

  it('starts a new group at the beginning of retained history, or only at new events when asked', async () => {
    harness = testBus();
    const { bus } = harness;
    const past = await bus.publish(widgetCreated, { widgetId: 'w1', n: 1 });
    const fromStart = new Received();
    const fromNew = new Received();
    await bus.subscribe({ group: 'new-service', events: [widgetCreated], handle: (e) => fromStart.add(e, 1) }).ready;
    await bus.subscribe({ group: 'live-only', events: [widgetCreated], startFrom: 'new', handle: (e) => fromNew.add(e, 1) }).ready;
    const next = await bus.publish(widgetCreated, { widgetId: 'w2', n: 2 });
    await Promise.all([fromStart.has(next.id), fromNew.has(next.id)]);

    expect(fromStart.ids()).toEqual([past.id, next.id]);
    expect(fromNew.ids()).toEqual([next.id]);
  });

  it('keeps the events of one key in order with concurrency > 1 while other keys run in parallel', async () => {
    harness = testBus();
    const { bus } = harness;
    const received = new Received();
    let running = 0;
    let maxRunning = 0;
    const gate = deferred();
    await bus.subscribe({
      group: 'projection',
      events: [widgetCreated],
      concurrency: 4,
      handle: async (e) => {
        running++;
        maxRunning = Math.max(maxRunning, running);
        if (maxRunning >= 2) gate.resolve();
        await gate.promise;
        running--;
        received.add(e, 1);
      },
    }).ready;
    const published = [];
    for (let n = 0; n < 3; n++) published.push(await bus.publish(widgetCreated, { widgetId: 'same', n }));
    published.push(await bus.publish(widgetCreated, { widgetId: 'other', n: 99 }));
    await received.until((items) => items.length === 4);

    const sameKey = received.items.filter((item) => item.envelope.key === 'same').map((item) => item.envelope.id);
    expect(sameKey).toEqual(published.slice(0, 3).map((e) => e.id));
    expect(maxRunning).toBe(2);
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

  it('rejects an invalid envelope with a permanent error', async () => {
    harness = testBus();
    await expect(harness.bus.publishEnvelope({ id: 'not-a-uuid' } as unknown as EventEnvelope)).rejects.toMatchObject({
      name: 'PermanentError',
      code: 'events.invalid_envelope',
    });
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
