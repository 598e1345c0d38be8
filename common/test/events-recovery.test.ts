import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { deferred, eventually, Received, testBus, widgetCreated, within } from './fixtures/events-harness.ts';
import { TYPESCRIPT_NODE_ARGS } from '@civildiy/common/testing';

const repositoryRoot = fileURLToPath(new URL('../../', import.meta.url));
const crashingConsumer = fileURLToPath(new URL('./fixtures/events-crashing-consumer.ts', import.meta.url));

let harness: ReturnType<typeof testBus>;
afterEach(async () => {
  await harness.cleanup();
});

describe('RedisStreamsEventBus crash recovery', () => {
  it('when a consumer process is killed with events read but not acknowledged, another consumer of the group takes them', async () => {
    harness = testBus({ claimIdleMs: 300 });
    const { bus, redis, prefix } = harness;
    const published = [];
    for (let n = 0; n < 3; n++) published.push(await bus.publish(widgetCreated, { widgetId: `w${n}`, n }));

    const child = spawn(process.execPath, [...TYPESCRIPT_NODE_ARGS, crashingConsumer], {
      cwd: repositoryRoot,
      env: { ...process.env, EVENTS_PREFIX: prefix, EVENTS_GROUP: 'orders-projection', EVENTS_CONCURRENCY: '3' },
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    const exited = once(child, 'exit');
    const readByChild = new Set<string>();
    const allRead = deferred();
    createInterface({ input: child.stdout }).on('line', (line) => {
      const [word, id] = line.split(' ');
      if (word === 'received' && id) readByChild.add(id);
      if (readByChild.size === 3) allRead.resolve();
    });
    try {
      await within(allRead.promise, 20_000, 'the child consumer to read the events');
    } finally {
      child.kill('SIGKILL');
      await exited;
    }
    const pending = (await redis.xpending(bus.streamKey('widgets-events'), 'orders-projection', '-', '+', 10)) as [string, string, number, number][];
    expect(pending.map(([, consumer]) => consumer)).toEqual(['doomed', 'doomed', 'doomed']);

    const received = new Received();
    const survivor = bus.subscribe({ group: 'orders-projection', consumer: 'survivor', events: [widgetCreated], handle: (e, ctx) => received.add(e, ctx.delivery) });
    await survivor.ready;
    await received.until((items) => items.length === 3, 'the claimed events');
    await survivor.close();

    expect(received.ids().sort()).toEqual(published.map((e) => e.id).sort());
    expect(received.items.map((item) => item.delivery)).toEqual([2, 2, 2]);
    expect(await bus.groups('widgets-events')).toMatchObject([{ name: 'orders-projection', pending: 0 }]);
  });

  it('when a consumer reads events and is abandoned without acknowledging, a consumer of its group takes them', async () => {
    harness = testBus({ claimIdleMs: 150 });
    const { bus, redis } = harness;
    await bus.createGroup('widgets-events', 'feed-service');
    const a = await bus.publish(widgetCreated, { widgetId: 'w1', n: 1 });
    const b = await bus.publish(widgetCreated, { widgetId: 'w2', n: 2 });
    // A consumer that read both and vanished (no heartbeat, no ack).
    await redis.xreadgroup('GROUP', 'feed-service', 'ghost', 'COUNT', 10, 'STREAMS', bus.streamKey('widgets-events'), '>');

    const received = new Received();
    await bus.subscribe({ group: 'feed-service', events: [widgetCreated], handle: (e, ctx) => received.add(e, ctx.delivery) }).ready;
    await received.until((items) => items.length === 2, 'the abandoned events');

    expect(received.items.map((item) => [item.envelope.id, item.delivery])).toEqual([[a.id, 2], [b.id, 2]]);
  });

  it('an event that keeps killing its consumers is dead-lettered without running the handler again', async () => {
    harness = testBus({ claimIdleMs: 100, maxDeliveries: 3 });
    const { bus, redis } = harness;
    await bus.createGroup('widgets-events', 'feed-service');
    const killer = await bus.publish(widgetCreated, { widgetId: 'w1', n: 1 });
    const stream = bus.streamKey('widgets-events');
    // Three consumers took it in turn and died mid-handler: delivered 3 times, never failed cleanly.
    const read = (await redis.xreadgroup('GROUP', 'feed-service', 'dead-1', 'STREAMS', stream, '>')) as [string, [string, string[]][]][];
    const entryId = read[0]![1][0]![0];
    await redis.xclaim(stream, 'feed-service', 'dead-2', 0, entryId);
    await redis.xclaim(stream, 'feed-service', 'dead-3', 0, entryId);

    const received = new Received();
    await bus.subscribe({ group: 'feed-service', events: [widgetCreated], handle: (e, ctx) => received.add(e, ctx.delivery) }).ready;
    const barrier = await bus.publish(widgetCreated, { widgetId: 'w2', n: 2 });
    await received.has(barrier.id);
    const deadLetters = await eventually(() => bus.deadLetters('widgets-events'), (list) => list.length > 0, 'the dead letter');

    expect(received.ids()).toEqual([barrier.id]);
    expect(deadLetters[0]).toMatchObject({ reason: 'max_deliveries', deliveries: 4, error: { code: 'events.max_deliveries' }, envelope: { id: killer.id } });
  });

  it('a handler slower than claimIdleMs is not taken over by another consumer while its process lives', async () => {
    harness = testBus({ claimIdleMs: 150 });
    const { bus } = harness;
    const received = new Received();
    const slowStarted = deferred();
    const subscribe = (consumer: string, slowMs: number) =>
      bus.subscribe({
        group: 'search-service',
        consumer,
        events: [widgetCreated],
        handle: async (e, ctx) => {
          if (slowMs > 0) {
            slowStarted.resolve();
            await new Promise((resolve) => setTimeout(resolve, slowMs)); // the slow work itself
          }
          received.add(e, ctx.delivery, consumer);
        },
      }).ready;
    await subscribe('slow', 800);
    const event = await bus.publish(widgetCreated, { widgetId: 'w1', n: 1 });
    await within(slowStarted.promise, 5_000, 'the slow handler');
    await subscribe('fast', 0);
    await received.has(event.id);

    expect(received.items.map((item) => [item.consumer, item.delivery])).toEqual([['slow', 1]]);
  });

  it('closing with a handler past the close timeout aborts its signal and hands its event straight to another consumer', async () => {
    // claimIdleMs is a minute: only the hand-back can make the other consumer take the event this fast.
    harness = testBus({ claimIdleMs: 60_000, claimIntervalMs: 50 });
    const { bus } = harness;
    const stuckStarted = deferred<AbortSignal>();
    const stuck = bus.subscribe({
      group: 'notification-service',
      consumer: 'stuck',
      events: [widgetCreated],
      handle: (_e, ctx) => {
        stuckStarted.resolve(ctx.signal);
        return new Promise((_, reject) => ctx.signal.addEventListener('abort', () => reject(new Error('aborted'))));
      },
    }); await stuck.ready;
    const event = await bus.publish(widgetCreated, { widgetId: 'w1', n: 1 });
    const signal = await within(stuckStarted.promise, 5_000, 'the stuck handler');
    const received = new Received();
    await bus.subscribe({ group: 'notification-service', consumer: 'helper', events: [widgetCreated], handle: (e, ctx) => received.add(e, ctx.delivery) }).ready;

    await stuck.close({ timeoutMs: 100 });
    expect(signal.aborted).toBe(true);
    await received.has(event.id, 5_000);
    expect(received.items.map((item) => [item.envelope.id, item.delivery])).toEqual([[event.id, 2]]);
  });
});
