import { afterEach, describe, expect, it } from 'vitest';
import { eventually, Received, testBus, widgetCreated } from './fixtures/events-harness.ts';

let harness: ReturnType<typeof testBus>;
afterEach(async () => {
  await harness.cleanup();
});

const nextMillisecond = () => new Promise((resolve) => setTimeout(resolve, 2));

describe('RedisStreamsEventBus replay, groups and retention', () => {
  it('a group reset to a time replays the events from that time on, while its consumer runs', async () => {
    harness = testBus({ blockMs: 200 });
    const { bus } = harness;
    const before = await bus.publish(widgetCreated, { widgetId: 'w0', n: 0 });
    await nextMillisecond();
    const from = new Date();
    const after = [await bus.publish(widgetCreated, { widgetId: 'w1', n: 1 }), await bus.publish(widgetCreated, { widgetId: 'w2', n: 2 })];
    const received = new Received();
    await bus.subscribe({ group: 'feed-service', events: [widgetCreated], handle: (e) => received.add(e, 1) }).ready;
    await received.until((items) => items.length === 3);

    // The running consumer sees the new position at its next read (within blockMs).
    await bus.resetGroup('widgets-events', 'feed-service', from);
    await received.until((items) => items.length === 5, 'the replay');

    expect(received.ids()).toEqual([before.id, ...after.map((e) => e.id), ...after.map((e) => e.id)]);
  });

  it('a group reset to the end or to an id skips what lies before it', async () => {
    harness = testBus();
    const { bus, redis } = harness;
    await bus.createGroup('widgets-events', 'late-service');
    await bus.publish(widgetCreated, { widgetId: 'w0', n: 0 });
    await bus.publish(widgetCreated, { widgetId: 'w1', n: 1 });
    await bus.resetGroup('widgets-events', 'late-service', 'end');
    expect(await bus.groups('widgets-events')).toMatchObject([{ name: 'late-service', lag: 0 }]);

    const firstId = (await redis.xrange(bus.streamKey('widgets-events'), '-', '+'))[0]![0];
    await bus.resetGroup('widgets-events', 'late-service', firstId);
    expect(await bus.groups('widgets-events')).toMatchObject([{ name: 'late-service', lag: 1, lastDeliveredId: firstId }]);

    const received = new Received();
    await bus.subscribe({ group: 'late-service', events: [widgetCreated], handle: (e) => received.add(e, 1) }).ready;
    const next = await bus.publish(widgetCreated, { widgetId: 'w2', n: 2 });
    await received.has(next.id);
    expect(received.items.map((item) => item.envelope.key)).toEqual(['w1', 'w2']);
  });

  it('creates groups idempotently, resets a missing group by creating it, and deletes groups', async () => {
    harness = testBus();
    const { bus } = harness;
    expect(await bus.createGroup('widgets-events', 'feed-service')).toBe(true);
    expect(await bus.createGroup('widgets-events', 'feed-service')).toBe(false);
    await bus.resetGroup('widgets-events', 'rebuild-2', 'start');
    expect((await bus.groups('widgets-events')).map((g) => g.name).sort()).toEqual(['feed-service', 'rebuild-2']);
    expect(await bus.deleteGroup('widgets-events', 'rebuild-2')).toBe(true);
    expect(await bus.deleteGroup('widgets-events', 'rebuild-2')).toBe(false);
    expect(await bus.deleteGroup('missing-events', 'x')).toBe(false);
    expect(await bus.groups('missing-events')).toEqual([]);
    await expect(bus.resetGroup('widgets-events', 'feed-service', 'yesterday')).rejects.toThrow(TypeError);
  });

  it('trims events older than retentionMs, so a new group no longer sees them', async () => {
    harness = testBus({ retentionMs: 300 });
    const { bus } = harness;
    await bus.publish(widgetCreated, { widgetId: 'old-1', n: 1 });
    await bus.publish(widgetCreated, { widgetId: 'old-2', n: 2 });
    await new Promise((resolve) => setTimeout(resolve, 350)); // let them age past the retention window
    const fresh = await bus.publish(widgetCreated, { widgetId: 'fresh', n: 3 });

    expect(await bus.trim('widgets-events')).toBe(2);
    const received = new Received();
    await bus.subscribe({ group: 'new-service', events: [widgetCreated], handle: (e) => received.add(e, 1) }).ready;
    await received.has(fresh.id);
    expect(received.ids()).toEqual([fresh.id]);
  });

  it('consumers trim their topics to the retention window on their own', async () => {
    harness = testBus({ retentionMs: 200, trimIntervalMs: 50 });
    const { bus, redis } = harness;
    await bus.subscribe({ group: 'feed-service', events: [widgetCreated], handle: () => {} }).ready;
    await bus.publish(widgetCreated, { widgetId: 'old', n: 1 });
    await eventually(() => redis.xlen(bus.streamKey('widgets-events')), (length) => length === 0, 'the trim', 3_000);
  });

  it('forgets a closed consumer at once, and a vanished one that holds nothing after consumerIdleTimeoutMs, without disturbing live ones', async () => {
    harness = testBus({ trimIntervalMs: 50, consumerIdleTimeoutMs: 300, blockMs: 100 });
    const { bus, redis } = harness;
    const stream = bus.streamKey('widgets-events');
    const consumers = async () => ((await redis.call('XINFO', 'CONSUMERS', stream, 'feed-service')) as unknown[][]).map((c) => String(c[1])).sort();
    const closing = bus.subscribe({ group: 'feed-service', consumer: 'closing', events: [widgetCreated], handle: () => {} });
    await closing.ready;
    await closing.close();
    // A consumer that read nothing and vanished (a crashed process after its events were claimed).
    await redis.call('XGROUP', 'CREATECONSUMER', stream, 'feed-service', 'vanished');
    expect(await consumers()).toEqual(['vanished']);

    const received = new Received();
    await bus.subscribe({ group: 'feed-service', consumer: 'live', events: [widgetCreated], handle: (e) => received.add(e, 1) }).ready;
    await received.has((await bus.publish(widgetCreated, { widgetId: 'w1', n: 1 })).id);
    await eventually(consumers, (names) => !names.includes('vanished'), 'the vanished consumer to be forgotten', 3_000);
    // Redis 7.0 does not count empty reads as activity, so a quiet live consumer may be forgotten
    // too: harmless, Redis recreates it with its next delivery.
    const next = await bus.publish(widgetCreated, { widgetId: 'w2', n: 2 });
    await received.has(next.id);
    expect(await consumers()).toEqual(['live']);
  });
});
