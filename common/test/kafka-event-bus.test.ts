/**
 * What only the Kafka adapter has, on the run's test broker (the shared behaviour is in
 * event-bus-conformance.test.ts): how topics and messages look on the broker, per-partition lag in
 * the metrics, readiness while no broker answers, and the offset bookkeeping behind its commits.
 */
import { randomUUID } from 'node:crypto';
import { Admin, Consumer, stringDeserializers, type Message } from '@platformatic/kafka';
import { Registry } from 'prom-client';
import { afterEach, describe, expect, inject, it } from 'vitest';
import { PermanentError } from '../src/errors/index.ts';
import { createLogger } from '../src/logging/index.ts';
import { KafkaEventBus } from '../src/kafka/index.ts';
import { BatchingProducer } from '../src/kafka/batching-producer.ts';
import { PartitionProgress } from '../src/kafka/partition-progress.ts';
import { kafkaSkipNote, kafkaTestBroker } from '../src/testing/kafka-test-broker.ts';
import { widgetCreated } from './fixtures/events-harness.ts';

const kafka = await kafkaTestBroker(inject('kafkaTestBroker'));
const brokers = kafka.status === 'ready' ? kafka.brokers : [];
const logger = createLogger({ service: 'kafka-event-bus-test', level: 'silent' });
const poll = { timeout: 20_000, interval: 50 };

describe('the offsets a Kafka consumer may commit', () => {
  it('moves past an offset only once it and every earlier one are finished, whatever order they finish in', () => {
    const progress = new PartitionProgress();
    for (const offset of [10n, 11n, 12n, 13n]) expect(progress.receive(offset)).toBe(true);
    progress.finish(12n);
    expect(progress.toCommit()).toBeUndefined();
    progress.finish(10n);
    expect(progress.toCommit()).toBe(10n);
    progress.finish(11n);
    expect(progress.toCommit()).toBe(12n);
    progress.markCommitted(12n);
    expect(progress.toCommit()).toBeUndefined();
    expect(progress.pending).toBe(1);
  });

  it('refuses an offset received again (the client fetches from the committed offset after a rebalance)', () => {
    const progress = new PartitionProgress();
    expect(progress.receive(5n)).toBe(true);
    expect(progress.receive(6n)).toBe(true);
    expect(progress.receive(5n)).toBe(false);
    expect(progress.receive(6n)).toBe(false);
    expect(progress.receive(7n)).toBe(true);
  });
});

describe('the batching producer under the Kafka adapter (an in-test client)', () => {
  /** A client whose sends wait until the test answers them, recording each request's messages. */
  function heldClient() {
    const requests: { keys: string[]; answer: (error?: Error) => void }[] = [];
    const client = {
      send: ({ messages }: { messages: { key: string }[] }) =>
        new Promise<void>((resolve, reject) => requests.push({ keys: messages.map((message) => message.key), answer: (error) => (error ? reject(error) : resolve()) })),
    };
    return { requests, client: client as unknown as ConstructorParameters<typeof BatchingProducer>[0] };
  }
  const message = (key: string, value = key) => ({ topic: 't', key, value, headers: {} });

  it('sends what arrives during a request in the next one, and fails the waiting messages of a failed request’s keys', async () => {
    const { requests, client } = heldClient();
    const producer = new BatchingProducer(client);
    const first = producer.send(message('a', 'a1'));
    await expect.poll(() => requests.length).toBe(1);
    const sameKey = producer.send(message('a', 'a2'));
    const otherKey = producer.send(message('b', 'b1'));
    requests[0]!.answer(new Error('broker away'));
    await expect(first).rejects.toThrow('broker away');
    // a2 must not land after a1 failed; b1 is not held back.
    await expect(sameKey).rejects.toThrow('broker away');
    await expect.poll(() => requests.length).toBe(2);
    expect(requests[1]!.keys).toEqual(['b']);
    requests[1]!.answer();
    await expect(otherKey).resolves.toBeUndefined();
  });

  it('shares the send of an id still in flight, and resolves an id delivered recently at once', async () => {
    const { requests, client } = heldClient();
    const producer = new BatchingProducer(client);
    const first = producer.send(message('a'), 'id-1');
    const again = producer.send(message('a'), 'id-1');
    await expect.poll(() => requests.length).toBe(1);
    requests[0]!.answer();
    await Promise.all([first, again]);
    await producer.send(message('a'), 'id-1');
    expect(requests).toHaveLength(1);
    expect(requests[0]!.keys).toEqual(['a']);
  });
});

describe.skipIf(kafka.status === 'skip')(`the Kafka event bus on a real broker ${kafkaSkipNote(kafka)}`.trim(), () => {
  const buses: KafkaEventBus[] = [];
  const clients: { close(): unknown }[] = [];
  const newBus = (prefix: string, registry = new Registry()) => {
    if (kafka.status !== 'ready') throw new Error(kafka.reason);
    const bus = new KafkaEventBus({ brokers, prefix, partitions: 4, logger, registry, sessionTimeoutMs: kafka.sessionTimeoutMs });
    buses.push(bus);
    return bus;
  };

  afterEach(async () => {
    await Promise.all(buses.splice(0).map((bus) => bus.close()));
    await Promise.all(clients.splice(0).map((client) => client.close()));
  });

  it('creates the topic with its partitions on first publish and sends the envelope keyed by aggregate, with type, version and correlation id headers', async () => {
    const prefix = `kafka-${randomUUID().slice(0, 8)}.`;
    const bus = newBus(prefix);
    const envelope = await bus.publish(widgetCreated, { widgetId: 'w-1', n: 1 });

    const admin = new Admin({ clientId: 'kafka-event-bus-test', bootstrapBrokers: brokers });
    clients.push(admin);
    const metadata = await admin.metadata({ topics: [`${prefix}${widgetCreated.topic}`] });
    expect(metadata.topics.get(`${prefix}${widgetCreated.topic}`)?.partitionsCount).toBe(4);

    const reader = new Consumer({ clientId: 'kafka-event-bus-test', groupId: `${prefix}raw`, bootstrapBrokers: brokers, deserializers: stringDeserializers });
    clients.push({ close: () => reader.close(true) });
    const stream = await reader.consume({ topics: [`${prefix}${widgetCreated.topic}`], mode: 'earliest', autocommit: false, maxWaitTime: 200 });
    const message = await new Promise<Message<string, string, string, string>>((resolve) => stream.once('data', resolve));
    expect(message).toMatchObject({ key: envelope.key, value: JSON.stringify(envelope) });
    expect(Object.fromEntries(message.headers)).toMatchObject({ type: widgetCreated.type, version: String(widgetCreated.version), 'correlation-id': envelope.correlationId });
  });

  it('reports the group’s lag per partition in the metrics while its consumer runs', async () => {
    const registry = new Registry();
    const bus = newBus(`kafka-${randomUUID().slice(0, 8)}.`, registry);
    for (let n = 0; n < 8; n++) await bus.publish(widgetCreated, { widgetId: `w-${n}`, n });
    let release = () => {};
    const gate = new Promise<void>((resolve) => (release = resolve));
    const subscription = bus.subscribe({ group: 'lagging', events: [widgetCreated], handle: () => gate });
    await subscription.ready;

    const partitionLag = async () => {
      const metric = await registry.getSingleMetric('civildiy_event_consumer_partition_lag')?.get();
      return (metric?.values ?? []).filter((value) => value.labels.group === 'lagging').reduce((sum, value) => sum + value.value, 0);
    };
    await expect.poll(partitionLag, poll).toBe(8);
    release();
    await expect.poll(partitionLag, poll).toBe(0);
    const groups = await bus.groups(widgetCreated.topic);
    expect(groups).toEqual([expect.objectContaining({ name: 'lagging', lag: 0, pending: 0 })]);
    expect(groups[0]!.partitions).toHaveLength(4);
  });

  it('keeps dead letters in a topic of their own, oldest first; a discarded one is gone, and an unknown id is refused', async () => {
    const prefix = `kafka-${randomUUID().slice(0, 8)}.`;
    const bus = newBus(prefix);
    const subscription = bus.subscribe({
      group: 'strict',
      events: [widgetCreated],
      handle: (event) => {
        if (event.data.n < 0) throw new PermanentError('negative', 'widgets.negative');
      },
    });
    await subscription.ready;
    const first = await bus.publish(widgetCreated, { widgetId: 'w-a', n: -1 });
    const second = await bus.publish(widgetCreated, { widgetId: 'w-b', n: -2 });
    await expect.poll(async () => (await bus.deadLetters(widgetCreated.topic)).map((letter) => letter.envelope?.id), poll).toEqual([first.id, second.id]);

    const admin = new Admin({ clientId: 'kafka-event-bus-test', bootstrapBrokers: brokers });
    clients.push(admin);
    expect((await admin.listTopics()).filter((topic) => topic.startsWith(prefix)).sort()).toEqual([`${prefix}${widgetCreated.topic}`, `${prefix}${widgetCreated.topic}.dead-letters`]);

    const [letter] = await bus.deadLetters(widgetCreated.topic);
    expect(await bus.discardDeadLetter(widgetCreated.topic, letter!.id)).toBe(true);
    expect(await bus.discardDeadLetter(widgetCreated.topic, letter!.id)).toBe(false);
    expect(await bus.redriveDeadLetter(widgetCreated.topic, 'no-such-id')).toBe(false);
    expect((await bus.deadLetters(widgetCreated.topic)).map((dead) => dead.envelope?.id)).toEqual([second.id]);
  });

  it('sends an envelope published again (the relay retrying a delivery that timed out but landed) only once', async () => {
    const bus = newBus(`kafka-${randomUUID().slice(0, 8)}.`);
    const envelope = await bus.publish(widgetCreated, { widgetId: 'w-1', n: 1 });
    await Promise.all([bus.publishEnvelope(envelope), bus.publishEnvelope(envelope)]);
    await bus.publish(widgetCreated, { widgetId: 'w-1', n: 2 });
    await bus.createGroup(widgetCreated.topic, 'counter', 'start');
    expect((await bus.groups(widgetCreated.topic)).find((group) => group.name === 'counter')?.lag).toBe(2);
  });

  it('gives up publishing after publishTimeoutMs while no broker answers', async () => {
    const bus = new KafkaEventBus({ brokers: ['127.0.0.1:1'], logger, publishTimeoutMs: 300 });
    buses.push(bus);
    const started = Date.now();
    await expect(bus.publish(widgetCreated, { widgetId: 'w-1', n: 1 })).rejects.toThrow(/did not take event/);
    expect(Date.now() - started).toBeLessThan(3_000);
  });

  it('fails its readiness ping within a few seconds while no broker answers', async () => {
    const bus = new KafkaEventBus({ brokers: ['127.0.0.1:1'], logger });
    buses.push(bus);
    const started = Date.now();
    await expect(bus.ping()).rejects.toThrow();
    expect(Date.now() - started).toBeLessThan(5_000);
  });
});
