import { afterEach, describe, expect, it } from 'vitest';
import { PermanentError } from '../src/errors/index.ts';
import { createEnvelope, type EventEnvelope } from '../src/events/index.ts';
import { deferred, Received, testBus, widgetCreated, within } from './fixtures/events-harness.ts';

let harness: ReturnType<typeof testBus>;
afterEach(async () => {
  await harness.cleanup();
});

describe('RedisStreamsEventBus failures and dead letters', () => {
  it('dead-letters an event whose data fails the schema at once, and later events keep flowing', async () => {
    harness = testBus();
    const { bus } = harness;
    const received = new Received();
    await bus.subscribe({ group: 'feed-service', events: [widgetCreated], handle: (e, ctx) => received.add(e, ctx.delivery) }).ready;

    const poison = { ...createEnvelope(widgetCreated, { widgetId: 'w1', n: 1 }), data: { widgetId: 42 } } as EventEnvelope;
    await bus.publishEnvelope(poison);
    const good = await bus.publish(widgetCreated, { widgetId: 'w2', n: 2 });
    await received.has(good.id);

    expect(received.ids()).toEqual([good.id]);
    const deadLetters = await bus.deadLetters('widgets-events');
    expect(deadLetters).toHaveLength(1);
    expect(deadLetters[0]).toMatchObject({
      topic: 'widgets-events',
      group: 'feed-service',
      reason: 'invalid_data',
      deliveries: 1,
      error: { code: 'events.invalid_data' },
      envelope: { id: poison.id, data: { widgetId: 42 } },
    });
  });

  it('dead-letters a stored entry of its types that is not an envelope, keeping its raw text', async () => {
    harness = testBus();
    const { bus, redis } = harness;
    const received = new Received();
    await bus.subscribe({ group: 'feed-service', events: [widgetCreated], handle: (e) => received.add(e, 1) }).ready;

    await redis.xadd(bus.streamKey('widgets-events'), '*', 'type', 'widget.created', 'envelope', '{not json');
    // Broken, but of a type this group does not read: skipped, not its dead letter.
    await redis.xadd(bus.streamKey('widgets-events'), '*', 'type', 'gizmo.broken', 'envelope', '{also not json');
    const good = await bus.publish(widgetCreated, { widgetId: 'w2', n: 2 });
    await received.has(good.id);

    const deadLetters = await bus.deadLetters('widgets-events');
    expect(deadLetters).toHaveLength(1);
    const [deadLetter] = deadLetters;
    expect(deadLetter).toMatchObject({ reason: 'malformed', raw: '{not json', error: { code: 'events.malformed_envelope' } });
    expect(deadLetter?.envelope).toBeUndefined();
  });

  it('when the handler always fails, the event is dead-lettered after maxDeliveries and later events are still processed', async () => {
    harness = testBus({ maxDeliveries: 3, claimIdleMs: 100 });
    const { bus } = harness;
    const received = new Received();
    const attempts: number[] = [];
    const lastAttempt = deferred();
    await bus.subscribe({
      group: 'notification-service',
      events: [widgetCreated],
      handle: (e, ctx) => {
        if (e.data.widgetId === 'broken') {
          attempts.push(ctx.delivery);
          if (ctx.delivery === 3) lastAttempt.resolve();
          throw new Error('provider down');
        }
        received.add(e, ctx.delivery);
      },
    }).ready;

    const broken = await bus.publish(widgetCreated, { widgetId: 'broken', n: 1 });
    const meanwhile = await bus.publish(widgetCreated, { widgetId: 'w2', n: 2 });
    await received.has(meanwhile.id);
    await within(lastAttempt.promise, 10_000, 'the third delivery');
    // Handled by this single-slot consumer only after the broken event is settled.
    const later = await bus.publish(widgetCreated, { widgetId: 'w3', n: 3 });
    await received.has(later.id);

    expect(attempts).toEqual([1, 2, 3]);
    expect(received.ids()).toEqual([meanwhile.id, later.id]);
    const deadLetters = await bus.deadLetters('widgets-events');
    expect(deadLetters).toHaveLength(1);
    expect(deadLetters[0]).toMatchObject({
      group: 'notification-service',
      reason: 'max_deliveries',
      deliveries: 3,
      error: { name: 'Error', message: 'provider down' },
      envelope: { id: broken.id },
    });
    const metrics = await harness.registry.metrics();
    expect(metrics).toContain('outcome="retried"} 2');
    expect(metrics).toContain('outcome="dead_lettered"} 1');
  });

  it('when the handler fails once, the event is delivered once more and acknowledged', async () => {
    harness = testBus({ claimIdleMs: 100 });
    const { bus } = harness;
    const received = new Received();
    const subscription = bus.subscribe({
      group: 'notification-service',
      events: [widgetCreated],
      handle: (e, ctx) => {
        if (e.data.widgetId === 'flaky' && ctx.delivery === 1) throw new Error('timeout');
        received.add(e, ctx.delivery);
      },
    }); await subscription.ready;

    const flaky = await bus.publish(widgetCreated, { widgetId: 'flaky', n: 1 });
    await received.has(flaky.id);
    await subscription.close(); // waits for the ack

    expect(received.items.map((item) => [item.envelope.id, item.delivery])).toEqual([[flaky.id, 2]]);
    expect(await bus.groups('widgets-events')).toMatchObject([{ name: 'notification-service', pending: 0, lag: 0 }]);
    expect(await bus.deadLetters('widgets-events')).toEqual([]);
  });

  it('a PermanentError dead-letters at once for that group only; a redrive delivers it to that group only', async () => {
    harness = testBus();
    const { bus } = harness;
    const fragile = new Received();
    const sturdy = new Received();
    let reject = true;
    await bus.subscribe({
      group: 'fragile-service',
      events: [widgetCreated],
      handle: (e, ctx) => {
        if (reject && e.data.widgetId === 'w1') throw new PermanentError('widget rejected', 'widgets.rejected');
        fragile.add(e, ctx.delivery);
      },
    }).ready;
    await bus.subscribe({ group: 'sturdy-service', events: [widgetCreated], handle: (e, ctx) => sturdy.add(e, ctx.delivery) }).ready;

    const event = await bus.publish(widgetCreated, { widgetId: 'w1', n: 1 });
    const barrier = await bus.publish(widgetCreated, { widgetId: 'w2', n: 2 });
    await Promise.all([fragile.has(barrier.id), sturdy.has(barrier.id)]);

    const [deadLetter] = await bus.deadLetters('widgets-events');
    expect(deadLetter).toMatchObject({
      group: 'fragile-service',
      reason: 'permanent',
      deliveries: 1,
      error: { name: 'PermanentError', code: 'widgets.rejected', message: 'widget rejected' },
      envelope: { id: event.id },
    });

    reject = false;
    expect(await bus.redriveDeadLetter('widgets-events', deadLetter!.id)).toBe(true);
    await fragile.has(event.id);
    const afterRedrive = await bus.publish(widgetCreated, { widgetId: 'w3', n: 3 });
    await sturdy.has(afterRedrive.id);

    expect(fragile.items.slice(0, 2).map((item) => [item.envelope.id, item.delivery])).toEqual([[barrier.id, 1], [event.id, 1]]);
    expect(sturdy.ids()).toEqual([event.id, barrier.id, afterRedrive.id]);
    expect(await bus.deadLetters('widgets-events')).toEqual([]);
    expect(await bus.redriveDeadLetter('widgets-events', deadLetter!.id)).toBe(false);
  });

  it('discards a dead letter for good', async () => {
    harness = testBus();
    const { bus } = harness;
    const received = new Received();
    await bus.subscribe({ group: 'feed-service', events: [widgetCreated], handle: (e) => received.add(e, 1) }).ready;
    await bus.publishEnvelope({ ...createEnvelope(widgetCreated, { widgetId: 'w1', n: 1 }), data: {} } as EventEnvelope);
    const barrier = await bus.publish(widgetCreated, { widgetId: 'w2', n: 2 });
    await received.has(barrier.id);

    const [deadLetter] = await bus.deadLetters('widgets-events');
    expect(await bus.discardDeadLetter('widgets-events', deadLetter!.id)).toBe(true);
    expect(await bus.deadLetters('widgets-events')).toEqual([]);
    expect(await bus.discardDeadLetter('widgets-events', deadLetter!.id)).toBe(false);
  });
});
