/**
 * The EventBus port's promises (src/events/event-bus.ts), checked the same way on every adapter:
 * Redis Streams on the test Redis, Kafka on the run's test broker (KAFKA_TEST_BROKERS, or a local
 * broker started for the run; skipped, with the reason in the title, on a machine without Java or
 * Maven unless CI=true). Adapter-specific behaviour (blocking reads, XAUTOCLAIM, trimming, Kafka
 * partitions) stays in the adapters' own tests.
 */
import { afterAll, afterEach, describe, expect, inject, test } from 'vitest';
import { currentContext, runWithContext, type RequestContext } from '../src/context/index.ts';
import { PermanentError } from '../src/errors/index.ts';
import { createEnvelope, isEvent, type EventBus, type EventEnvelope } from '../src/events/index.ts';
import { kafkaSkipNote, kafkaTestBroker } from '../src/testing/kafka-test-broker.ts';
import { ConsumerLog, ConsumerProcess } from './fixtures/consumer-process.ts';
import { kafkaTransport, redisStreamsTransport, type BusNamespace, type EventBusTransport } from './fixtures/event-bus-transports.ts';
import { deferred, gadgetShipped, Received, widgetCreated, widgetCreatedV2, widgetPainted, within } from './fixtures/events-harness.ts';

const kafka = await kafkaTestBroker(inject('kafkaTestBroker'));
if (kafka.status === 'skip') console.error(`The Kafka half of the event bus conformance suite is skipped: ${kafka.reason}`);
const transports: EventBusTransport[] = [redisStreamsTransport(), kafkaTransport(kafka)];
const titles: Record<EventBusTransport['name'], string> = { 'redis-streams': 'Redis Streams', kafka: `Kafka ${kafkaSkipNote(kafka)}`.trim() };

const TOPIC = widgetCreated.topic;

/** Resolves with a time strictly after every event published so far (the clock has moved past the last one). */
async function clockPastNow(): Promise<Date> {
  const now = Date.now();
  while (Date.now() <= now) await new Promise((resolve) => setImmediate(resolve));
  return new Date();
}

for (const transport of transports) describe.skipIf(transport.skipReason !== undefined)(`the ${titles[transport.name]} event bus honours the EventBus port`, () => {
  let ns: BusNamespace;
  const namespaces: BusNamespace[] = [];
  const consumers: ConsumerProcess[] = [];

  /** A fresh namespace for the test, cleaned up after it. */
  const namespace = (): BusNamespace => {
    ns = transport.namespace();
    namespaces.push(ns);
    return ns;
  };
  /** A consumer process on the test's namespace, stopped after the test. */
  const startConsumer = async (name: string, log: ConsumerLog, env: Record<string, string>) => {
    const consumer = await ConsumerProcess.start(name, { ...ns.childEnv(), ...env }, log, 20_000);
    consumers.push(consumer);
    return consumer;
  };

  afterEach(async () => {
    await Promise.all(consumers.splice(0).map((consumer) => consumer.stop()));
    await Promise.all(namespaces.splice(0).map((used) => used.cleanup()));
  });
  afterAll(() => transport.close());

  describe('publishing and subscribing', () => {
    test('delivers the published envelope to the handler inside the publisher’s correlation context', async () => {
      const bus = namespace().bus();
      const seen = deferred<{ envelope: EventEnvelope; context: RequestContext | undefined; delivery: number }>();
      await bus.subscribe({
        group: 'feed-service',
        events: [widgetCreated],
        handle: (envelope, ctx) => {
          ctx.logger.info('handling widget');
          seen.resolve({ envelope, context: currentContext(), delivery: ctx.delivery });
        },
      }).ready;

      const published = await runWithContext({ correlationId: 'req-42', userId: 'user-7' }, () => bus.publish(widgetCreated, { widgetId: 'w1', n: 1 }));
      const { envelope, context, delivery } = await within(seen.promise, 10_000, 'the event');

      expect(envelope).toEqual(published);
      expect(envelope).toMatchObject({ type: 'widget.created', version: 1, topic: TOPIC, key: 'w1', correlationId: 'req-42', actor: 'user-7' });
      expect(context).toEqual({ correlationId: 'req-42', userId: 'user-7', causationId: published.id });
      expect(delivery).toBe(1);
      expect(ns.lines.find((line) => line.msg === 'handling widget')).toMatchObject({ topic: TOPIC, group: 'feed-service', eventType: 'widget.created', eventId: published.id, delivery: 1 });
    });

    test('gives every group every event, and each handler the types it subscribed to in the versions it knows', async () => {
      const bus = namespace().bus();
      const everything = new Received();
      const createdOnly = new Received();
      await bus.subscribe({
        group: 'feed-service',
        events: [widgetCreated, widgetPainted],
        handle: (e) => {
          // The handler gets the union of its contracts, narrowed through the contract.
          if (isEvent(widgetPainted, e)) expect(typeof e.data.colour).toBe('string');
          everything.add(e, 1);
        },
      }).ready;
      await bus.subscribe({ group: 'search-service', events: [widgetCreated], handle: (e) => createdOnly.add(e, 1) }).ready;

      const created = await bus.publish(widgetCreated, { widgetId: 'w1', n: 1 });
      const painted = await bus.publish(widgetPainted, { widgetId: 'w1', n: 2, colour: 'red' });
      await bus.publish(widgetCreatedV2, { widgetId: 'w1', n: 3, size: 4 });
      const last = await bus.publish(widgetCreated, { widgetId: 'w1', n: 4 });
      await Promise.all([everything.has(last.id), createdOnly.has(last.id)]);

      expect(everything.ids()).toEqual([created.id, painted.id, last.id]);
      expect(createdOnly.ids()).toEqual([created.id, last.id]);
    });

    test('keeps the events of each key in order with concurrency > 1, while different keys are handled in parallel', async () => {
      const bus = namespace().bus();
      const received = new Received();
      const keys = Array.from({ length: 8 }, (_, k) => `key-${k}`);
      const perKey = 5;
      const active = new Set<string>();
      const overlapping: string[] = [];
      let running = 0;
      let mostRunning = 0;
      // Handlers wait until two run at once: a consumer that handles one event at a time never gets past the first.
      const parallel = deferred();
      await bus.subscribe({
        group: 'projection',
        events: [widgetCreated],
        concurrency: 4,
        handle: async (e, ctx) => {
          if (active.has(e.key)) overlapping.push(e.key);
          active.add(e.key);
          mostRunning = Math.max(mostRunning, ++running);
          if (running >= 2) parallel.resolve();
          await parallel.promise;
          await new Promise((resolve) => setImmediate(resolve));
          running--;
          active.delete(e.key);
          received.add(e, ctx.delivery);
        },
      }).ready;

      for (let n = 0; n < perKey; n++) await Promise.all(keys.map((widgetId) => bus.publish(widgetCreated, { widgetId, n })));
      await received.until((items) => items.length >= keys.length * perKey, 'every event (never two handlers at once?)', 20_000);

      for (const key of keys) {
        const sequence = received.items.filter((item) => item.envelope.key === key).map((item) => (item.envelope.data as { n: number }).n);
        expect(sequence, `the events of ${key}`).toEqual([0, 1, 2, 3, 4]);
      }
      expect(overlapping).toEqual([]);
      expect(mostRunning).toBeGreaterThanOrEqual(2);
      expect(mostRunning).toBeLessThanOrEqual(4);
      expect(received.items.every((item) => item.delivery === 1)).toBe(true);
    });

    test('catches up on a backlog larger than what a consumer holds at once, then keeps consuming new events', async () => {
      const bus = namespace().bus();
      // More than the Kafka adapter buffers per subscription (1,000): it must stop and resume fetching.
      const backlog = 1_500;
      for (let start = 0; start < backlog; start += 100) {
        await Promise.all(Array.from({ length: 100 }, (_, i) => bus.publish(widgetCreated, { widgetId: `w${(start + i) % 40}`, n: start + i })));
      }
      const handled = new Set<number>();
      await bus.subscribe({ group: 'late-reader', events: [widgetCreated], concurrency: 16, handle: (e) => void handled.add(e.data.n) }).ready;
      await expect.poll(() => handled.size, { timeout: 60_000, interval: 100 }).toBe(backlog);

      await Promise.all(Array.from({ length: 50 }, (_, i) => bus.publish(widgetCreated, { widgetId: `w${i % 40}`, n: backlog + i })));
      await expect.poll(() => handled.size, { timeout: 20_000, interval: 50 }).toBe(backlog + 50);
    }, 90_000);

    test('consumes the contracts of several topics in one subscription', async () => {
      const bus = namespace().bus();
      const received = new Received();
      const subscription = bus.subscribe({ group: 'dashboard', events: [widgetCreated, gadgetShipped], handle: (e) => received.add(e, 1) });
      await within(subscription.ready, 15_000, 'the subscription to both topics to be ready');
      const widget = await bus.publish(widgetCreated, { widgetId: 'w1', n: 1 });
      const gadget = await bus.publish(gadgetShipped, { gadgetId: 'g1' });
      await received.until((items) => items.length >= 2, 'an event of each topic');

      expect(subscription.topics).toEqual([TOPIC, gadgetShipped.topic]);
      expect(received.ids().sort()).toEqual([widget.id, gadget.id].sort());
    });

    test('rejects publishing an invalid envelope with a permanent error', async () => {
      const bus = namespace().bus();
      await expect(bus.publishEnvelope({ id: 'not-a-uuid' } as unknown as EventEnvelope)).rejects.toMatchObject({ name: 'PermanentError', code: 'events.invalid_envelope' });
    });

    test('a group created late sees past events with startFrom beginning, and only events published after ready with startFrom new', async () => {
      const bus = namespace().bus();
      const past = await bus.publish(widgetCreated, { widgetId: 'w1', n: 1 });
      const fromBeginning = new Received();
      const fromNew = new Received();
      await bus.subscribe({ group: 'new-service', events: [widgetCreated], startFrom: 'beginning', handle: (e) => fromBeginning.add(e, 1) }).ready;
      await bus.subscribe({ group: 'live-only', events: [widgetCreated], startFrom: 'new', handle: (e) => fromNew.add(e, 1) }).ready;
      const next = await bus.publish(widgetCreated, { widgetId: 'w1', n: 2 });
      await Promise.all([fromBeginning.has(next.id), fromNew.has(next.id)]);

      expect(fromBeginning.ids()).toEqual([past.id, next.id]);
      expect(fromNew.ids()).toEqual([next.id]);
    });
  });

  describe('consumer processes that crash', () => {
    test(
      'when a consumer process is killed holding unacknowledged events, another consumer of its group handles them',
      async () => {
        const bus = namespace().bus();
        const published = [];
        for (let n = 0; n < 3; n++) published.push(await bus.publish(widgetCreated, { widgetId: `w${n}`, n }));
        const log = new ConsumerLog();
        const doomed = await startConsumer('doomed', log, { EVENTS_GROUP: 'orders-projection', EVENTS_CONCURRENCY: '3', EVENTS_HOLD: '*' });
        await log.until(() => log.ids('doomed', 'received').length === 3, 'the doomed consumer to take the 3 events', transport.timings.failoverMs);
        await doomed.kill();

        const received = new Received();
        const survivor = bus.subscribe({ group: 'orders-projection', consumer: 'survivor', events: [widgetCreated], handle: (e, ctx) => received.add(e, ctx.delivery) });
        await received.until((items) => items.length >= 3, 'the killed consumer’s events', transport.timings.failoverMs);
        await survivor.close();

        expect(log.ids('doomed', 'handled')).toEqual([]);
        expect(received.ids().sort()).toEqual(published.map((e) => e.id).sort());
        const group = async () => (await bus.groups(TOPIC)).find((info) => info.name === 'orders-projection');
        await expect.poll(group, { timeout: 10_000 }).toMatchObject({ pending: 0, lag: 0 });
      },
      transport.timings.processTestMs,
    );

    test(
      'two consumer processes of one group share its events; when one is killed the other takes its unfinished events and every later one',
      async () => {
        const bus = namespace().bus();
        const log = new ConsumerLog();
        const group = { EVENTS_GROUP: 'notification-service' };
        // The victim never finishes the events of widgets named hold-*: they are unfinished when it dies.
        const victim = await startConsumer('victim', log, { ...group, EVENTS_HOLD: 'hold-' });
        await startConsumer('survivor', log, group);
        const published: string[] = [];
        const publish = async (widgetId: string) => {
          const { id } = await bus.publish(widgetCreated, { widgetId, n: published.length });
          published.push(id);
          return id;
        };
        const handledBoth = () => log.ids('victim', 'handled').length > 0 && log.ids('survivor', 'handled').length > 0;
        const victimHolds = () => log.ids('victim', 'received').filter((id) => !log.ids('victim', 'handled').includes(id));

        // Shared: one event after another, each on a new key, until both consumers have handled some.
        for (let n = 0; !handledBoth(); n++) {
          if (n === 40) throw new Error('40 events, and one of the consumers handled none');
          const id = await publish(`share-${n}`);
          await log.until(() => log.handledBy(id).length > 0, `event share-${n} to be handled`, 10_000);
        }
        const sharedCount = published.length;
        // Unfinished: more events, until the victim holds one (the survivor handles those it gets).
        for (let n = 0; victimHolds().length === 0; n++) {
          if (n === 40) throw new Error('40 events, and the victim took none');
          const id = await publish(`hold-${n}`);
          await log.until(() => log.ids('victim', 'received').includes(id) || log.handledBy(id).length > 0, `event hold-${n} to be taken`, 10_000);
        }
        const unfinished = victimHolds();
        await victim.kill();
        const stepsBeforeKill = log.steps.length;

        const afterKill: string[] = [];
        for (let n = 0; n < 6; n++) afterKill.push(await publish(`after-${n}`));
        await log.until(
          () => [...unfinished, ...afterKill].every((id) => log.ids('survivor', 'handled').includes(id)),
          'the survivor to handle the victim’s unfinished events and every later one',
          transport.timings.failoverMs,
        );

        // On Kafka the survivor's join moves partitions while the first shared events are handled: an
        // event handled but not yet committed when its partition moves comes again to its next owner,
        // as Kafka's at-least-once delivery allows (the inbox makes it harmless; CI saw it once). So
        // there the check starts with the events published once both consumers were handling.
        const settled = new Set(transport.name === 'kafka' ? published.filter((_, index) => index >= sharedCount) : published);
        const handledBeforeKill = (consumer: string) =>
          log.steps
            .slice(0, stepsBeforeKill)
            .filter((entry) => entry.consumer === consumer && entry.step === 'handled' && settled.has(entry.eventId))
            .map((entry) => entry.eventId);
        // Before the kill no event was handled twice; after it only what the victim had not acknowledged may come again.
        expect(handledBeforeKill('victim').filter((id) => handledBeforeKill('survivor').includes(id))).toEqual([]);
        expect(published.filter((id) => log.handledBy(id).length === 0)).toEqual([]);
      },
      transport.timings.processTestMs,
    );
  });

  describe('poison events and dead letters', () => {
    test('an event whose data fails the schema is dead-lettered as invalid_data, and later events of its key keep flowing', async () => {
      const bus = namespace().bus();
      const received = new Received();
      await bus.subscribe({ group: 'feed-service', events: [widgetCreated], handle: (e, ctx) => received.add(e, ctx.delivery) }).ready;

      const poison = { ...createEnvelope(widgetCreated, { widgetId: 'w1', n: 1 }), data: { widgetId: 42 } } as EventEnvelope;
      await bus.publishEnvelope(poison);
      const good = await bus.publish(widgetCreated, { widgetId: 'w1', n: 2 });
      await received.has(good.id);

      expect(received.ids()).toEqual([good.id]);
      await expect.poll(() => bus.deadLetters(TOPIC), { timeout: 10_000 }).toHaveLength(1);
      const [deadLetter] = await bus.deadLetters(TOPIC);
      expect(deadLetter).toMatchObject({
        topic: TOPIC,
        group: 'feed-service',
        reason: 'invalid_data',
        deliveries: 1,
        error: { code: 'events.invalid_data' },
        envelope: { id: poison.id, data: { widgetId: 42 } },
      });
    });

    test('when the handler always fails, the event is dead-lettered after maxDeliveries with its delivery count and error, and its key flows again', async () => {
      const bus = namespace().bus({ maxDeliveries: 3 });
      const received = new Received();
      const attempts: number[] = [];
      await bus.subscribe({
        group: 'notification-service',
        events: [widgetCreated],
        handle: (e, ctx) => {
          if (e.data.n === 1) {
            attempts.push(ctx.delivery);
            throw new Error('provider down');
          }
          received.add(e, ctx.delivery);
        },
      }).ready;

      const broken = await bus.publish(widgetCreated, { widgetId: 'w1', n: 1 });
      const otherKey = await bus.publish(widgetCreated, { widgetId: 'w2', n: 2 });
      await received.has(otherKey.id);
      await expect.poll(() => bus.deadLetters(TOPIC), { timeout: 15_000 }).toHaveLength(1);
      const sameKeyLater = await bus.publish(widgetCreated, { widgetId: 'w1', n: 3 });
      await received.has(sameKeyLater.id);

      expect(attempts).toEqual([1, 2, 3]);
      expect(received.ids()).toEqual([otherKey.id, sameKeyLater.id]);
      expect(await bus.deadLetters(TOPIC)).toMatchObject([
        { group: 'notification-service', reason: 'max_deliveries', deliveries: 3, error: { name: 'Error', message: 'provider down' }, envelope: { id: broken.id } },
      ]);
    });

    test('when the handler fails once, the event is delivered once more and acknowledged', async () => {
      const bus = namespace().bus();
      const received = new Received();
      const subscription = bus.subscribe({
        group: 'notification-service',
        events: [widgetCreated],
        handle: (e, ctx) => {
          if (ctx.delivery === 1) throw new Error('timeout');
          received.add(e, ctx.delivery);
        },
      });
      await subscription.ready;

      const flaky = await bus.publish(widgetCreated, { widgetId: 'w1', n: 1 });
      await received.has(flaky.id);
      await subscription.close();

      expect(received.items.map((item) => [item.envelope.id, item.delivery])).toEqual([[flaky.id, 2]]);
      const group = async () => (await bus.groups(TOPIC)).find((info) => info.name === 'notification-service');
      await expect.poll(group, { timeout: 10_000 }).toMatchObject({ pending: 0, lag: 0 });
      expect(await bus.deadLetters(TOPIC)).toEqual([]);
    });

    test('a PermanentError dead-letters the event for the failing group only; a redrive delivers it again to that group only', async () => {
      const bus = namespace().bus();
      const fragile = new Received();
      const sturdy = new Received();
      let reject = true;
      await bus.subscribe({
        group: 'fragile-service',
        events: [widgetCreated],
        handle: (e, ctx) => {
          if (reject && e.data.n === 1) throw new PermanentError('widget rejected', 'widgets.rejected');
          fragile.add(e, ctx.delivery);
        },
      }).ready;
      await bus.subscribe({ group: 'sturdy-service', events: [widgetCreated], handle: (e, ctx) => sturdy.add(e, ctx.delivery) }).ready;

      const event = await bus.publish(widgetCreated, { widgetId: 'w1', n: 1 });
      const barrier = await bus.publish(widgetCreated, { widgetId: 'w1', n: 2 });
      await Promise.all([fragile.has(barrier.id), sturdy.has(barrier.id)]);
      await expect.poll(() => bus.deadLetters(TOPIC), { timeout: 10_000 }).toHaveLength(1);
      const [deadLetter] = await bus.deadLetters(TOPIC);
      expect(deadLetter).toMatchObject({
        topic: TOPIC,
        group: 'fragile-service',
        reason: 'permanent',
        deliveries: 1,
        error: { name: 'PermanentError', code: 'widgets.rejected', message: 'widget rejected' },
        envelope: { id: event.id },
      });

      reject = false;
      expect(await bus.redriveDeadLetter(TOPIC, deadLetter!.id)).toBe(true);
      await fragile.has(event.id);
      // Same key, published after the redrive: the sturdy group has passed the redriven entry when it handles this one.
      const afterRedrive = await bus.publish(widgetCreated, { widgetId: 'w1', n: 3 });
      await Promise.all([fragile.has(afterRedrive.id), sturdy.has(afterRedrive.id)]);

      expect(fragile.items.map((item) => [item.envelope.id, item.delivery])).toEqual([
        [barrier.id, 1],
        [event.id, 1],
        [afterRedrive.id, 1],
      ]);
      expect(sturdy.ids()).toEqual([event.id, barrier.id, afterRedrive.id]);
      expect(await bus.deadLetters(TOPIC)).toEqual([]);
      expect(await bus.redriveDeadLetter(TOPIC, deadLetter!.id)).toBe(false);
    });

    test('a discarded dead letter is gone for good', async () => {
      const bus = namespace().bus();
      const received = new Received();
      await bus.subscribe({ group: 'feed-service', events: [widgetCreated], handle: (e) => received.add(e, 1) }).ready;
      await bus.publishEnvelope({ ...createEnvelope(widgetCreated, { widgetId: 'w1', n: 1 }), data: {} } as EventEnvelope);
      const barrier = await bus.publish(widgetCreated, { widgetId: 'w1', n: 2 });
      await received.has(barrier.id);
      await expect.poll(() => bus.deadLetters(TOPIC), { timeout: 10_000 }).toHaveLength(1);

      const [deadLetter] = await bus.deadLetters(TOPIC);
      expect(await bus.discardDeadLetter(TOPIC, deadLetter!.id)).toBe(true);
      expect(await bus.deadLetters(TOPIC)).toEqual([]);
      expect(await bus.discardDeadLetter(TOPIC, deadLetter!.id)).toBe(false);
      expect(await bus.redriveDeadLetter(TOPIC, deadLetter!.id)).toBe(false);
    });

    test('a stored entry that is not an envelope is dead-lettered as malformed with its raw text, and the events after it keep flowing', async () => {
      const bus = namespace().bus();
      const received = new Received();
      await bus.subscribe({ group: 'feed-service', events: [widgetCreated], handle: (e) => received.add(e, 1) }).ready;

      await ns.publishRaw(TOPIC, '{not json', { type: widgetCreated.type, version: widgetCreated.version, key: 'w1' });
      // The same key as the raw entry (so the same Kafka partition), and a few others.
      const after = [];
      for (const widgetId of ['w1', 'w2', 'w3', 'w4']) after.push(await bus.publish(widgetCreated, { widgetId, n: 2 }));
      await received.until((items) => items.length >= after.length, 'the events after the raw entry');

      expect(received.ids().sort()).toEqual(after.map((e) => e.id).sort());
      await expect.poll(() => bus.deadLetters(TOPIC), { timeout: 10_000 }).toHaveLength(1);
      const [deadLetter] = await bus.deadLetters(TOPIC);
      expect(deadLetter).toMatchObject({ group: 'feed-service', reason: 'malformed', raw: '{not json', error: { code: 'events.malformed_envelope' } });
      expect(deadLetter?.envelope).toBeUndefined();
    });
  });

  describe('replay', () => {
    /** Publishes the events, has `group` handle them all, and closes its consumer. */
    async function consumeAll(bus: EventBus, group: string, count: number): Promise<void> {
      const received = new Received();
      const subscription = bus.subscribe({ group, events: [widgetCreated], handle: (e) => received.add(e, 1) });
      await received.until((items) => items.length >= count, `the first ${count} events`);
      await subscription.close();
    }

    /** Subscribes `group` again and resolves with what it handles until `last` arrives. */
    async function replayUntil(bus: EventBus, group: string, last: EventEnvelope): Promise<Received> {
      const replay = new Received();
      bus.subscribe({ group, events: [widgetCreated], handle: (e, ctx) => replay.add(e, ctx.delivery) });
      await replay.has(last.id);
      return replay;
    }

    test('a group reset to the start, its consumer closed, replays every event', async () => {
      const bus = namespace().bus();
      const published = [];
      for (let n = 0; n < 3; n++) published.push(await bus.publish(widgetCreated, { widgetId: 'w1', n }));
      await consumeAll(bus, 'feed-service', 3);

      await bus.resetGroup(TOPIC, 'feed-service', 'start');
      const replay = await replayUntil(bus, 'feed-service', published[2]!);

      expect(replay.ids()).toEqual(published.map((e) => e.id));
      expect(replay.items.every((item) => item.delivery === 1)).toBe(true);
    });

    test('a group reset to a time replays the events published from that time on', async () => {
      const bus = namespace().bus();
      const before = await bus.publish(widgetCreated, { widgetId: 'w1', n: 0 });
      const from = await clockPastNow();
      const after = [await bus.publish(widgetCreated, { widgetId: 'w1', n: 1 }), await bus.publish(widgetCreated, { widgetId: 'w1', n: 2 })];
      await consumeAll(bus, 'feed-service', 3);

      await bus.resetGroup(TOPIC, 'feed-service', from);
      const replay = await replayUntil(bus, 'feed-service', after[1]!);

      expect(replay.ids()).toEqual(after.map((e) => e.id));
      expect(replay.ids()).not.toContain(before.id);
    });

    test('a group reset to the end skips the events published before', async () => {
      const bus = namespace().bus();
      expect(await bus.createGroup(TOPIC, 'late-service', 'start')).toBe(true);
      await bus.publish(widgetCreated, { widgetId: 'w1', n: 0 });
      await bus.publish(widgetCreated, { widgetId: 'w2', n: 1 });

      await bus.resetGroup(TOPIC, 'late-service', 'end');
      expect((await bus.groups(TOPIC)).find((group) => group.name === 'late-service')).toMatchObject({ lag: 0 });
      const received = new Received();
      await bus.subscribe({ group: 'late-service', events: [widgetCreated], handle: (e) => received.add(e, 1) }).ready;
      const next = await bus.publish(widgetCreated, { widgetId: 'w1', n: 2 });
      await received.has(next.id);

      expect(received.ids()).toEqual([next.id]);
    });
  });

  describe('consumer groups', () => {
    test('creates a group once, resets a missing group by creating it, deletes groups, and refuses a position it cannot read', async () => {
      const bus = namespace().bus();
      // Topics come from the contracts: publishing creates it on every transport.
      await bus.publish(widgetCreated, { widgetId: 'w1', n: 1 });
      expect(await bus.createGroup(TOPIC, 'feed-service')).toBe(true);
      expect(await bus.createGroup(TOPIC, 'feed-service')).toBe(false);
      await bus.resetGroup(TOPIC, 'rebuild-2', 'start');
      expect((await bus.groups(TOPIC)).map((group) => group.name).sort()).toEqual(['feed-service', 'rebuild-2']);
      expect((await bus.groups(TOPIC)).find((group) => group.name === 'rebuild-2')).toMatchObject({ lag: 1 });

      expect(await bus.deleteGroup(TOPIC, 'rebuild-2')).toBe(true);
      expect(await bus.deleteGroup(TOPIC, 'rebuild-2')).toBe(false);
      expect((await bus.groups(TOPIC)).map((group) => group.name)).toEqual(['feed-service']);
      await expect(bus.resetGroup(TOPIC, 'feed-service', 'yesterday')).rejects.toThrow(TypeError);
    });
  });

  describe('lag', () => {
    test('with no consumer running the group’s lag counts its unhandled events; it reaches 0 once they are handled, also in the metrics', async () => {
      const bus = namespace().bus();
      const received = new Received();
      const first = bus.subscribe({ group: 'lagging-service', events: [widgetCreated], handle: (e) => received.add(e, 1) });
      await first.ready;
      await bus.publish(widgetCreated, { widgetId: 'w1', n: 0 });
      await bus.publish(widgetCreated, { widgetId: 'w2', n: 1 });
      await received.until((items) => items.length >= 2, 'the first two events');
      await first.close();

      const unhandled: EventEnvelope[] = [];
      for (let n = 0; n < 3; n++) unhandled.push(await bus.publish(widgetCreated, { widgetId: `w${n}`, n: 2 + n }));
      const lagOf = async () => (await bus.groups(TOPIC)).find((group) => group.name === 'lagging-service');
      await expect.poll(lagOf, { timeout: 10_000 }).toMatchObject({ lag: 3, pending: 0 });

      bus.subscribe({ group: 'lagging-service', events: [widgetCreated], handle: (e) => received.add(e, 1) });
      await received.until((items) => unhandled.every((e) => items.some((item) => item.envelope.id === e.id)), 'the unhandled events');
      await expect.poll(lagOf, { timeout: 10_000 }).toMatchObject({ lag: 0, pending: 0 });
      await expect
        .poll(() => ns.registry.metrics(), { timeout: 10_000 })
        .toContain(`civildiy_event_consumer_lag{topic="${TOPIC}",group="lagging-service"} 0`);
    });
  });
});
