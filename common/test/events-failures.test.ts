import { afterEach, describe, expect, it } from 'vitest';
import { deferred, Received, testBus, widgetCreated, within } from './fixtures/events-harness.ts';

let harness: ReturnType<typeof testBus>;
afterEach(async () => {
  await harness.cleanup();
});

describe('RedisStreamsEventBus failures and dead letters', () => {
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

});
