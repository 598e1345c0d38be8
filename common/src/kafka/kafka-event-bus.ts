import { randomBytes, randomUUID } from 'node:crypto';
import { hostname } from 'node:os';
import { Admin, Consumer, Producer, stringDeserializers, stringSerializers } from '@platformatic/kafka';
import type { z } from 'zod';
import { assertPublishable, createEnvelope, type EnvelopeOptions, type EventData, type EventDefinition, type EventEnvelope } from '../events/define.ts';
import type { DeadLetter, EventBus, GroupInfo, GroupPosition, SubscribeOptions, Subscription } from '../events/event-bus.ts';
import { eventMetrics, type EventMetrics, type GroupStats } from '../events/event-metrics.ts';
import { createLogger, type Logger } from '../logging/index.ts';
import { BatchingProducer } from './batching-producer.ts';
import { KafkaDeadLetterReader, toDeadLetter } from './kafka-dead-letters.ts';
import type { KafkaEventBusOptions } from './kafka-event-bus-options.ts';
import { KafkaGroupOffsets } from './kafka-group-offsets.ts';
import { deadLetterTopicName, envelopeMessage, groupName, HEADER, topicName, type DeadLetterRecord } from './kafka-records.ts';
import { KafkaSubscription, type KafkaSubscriptionSettings } from './kafka-subscription.ts';
import { KafkaTopics } from './kafka-topics.ts';

const DEFAULTS = {
  clientId: 'civildiy',
  prefix: '',
  partitions: 3,
  replicationFactor: 1,
  retentionMs: 7 * 24 * 60 * 60 * 1000,
  maxDeliveries: 5,
  retryBackoffMs: 1_000,
  sessionTimeoutMs: 10_000,
  maxBufferedEvents: 1_000,
  closeTimeoutMs: 10_000,
  requestTimeoutMs: 5_000,
  publishTimeoutMs: 10_000,
  commitIntervalMs: 20,
} as const;

/** How long `ping()` waits for the broker. */
const PING_TIMEOUT_MS = 2_000;

function positive(name: string, value: number): number {
  if (!Number.isFinite(value) || value <= 0) throw new TypeError(`${name} must be a positive number`);
  return value;
}

/**
 * The Kafka adapter of the event bus (`EVENT_BUS=kafka`), on `@platformatic/kafka`.
 *
 * - Topics are created on first use from the contracts: `<prefix><topic>` with `partitions`
 *   partitions and `retention.ms` = `retentionMs` (7 days, as the seeds' `posts-events`); message
 *   key = the envelope's key, so one aggregate's events share a partition and stay in order;
 *   headers `type`, `version`, `correlation-id`.
 * - Publishing is idempotent with acks=all, and concurrent publishes share produce requests.
 * - One consumer group per subscribing service (`<prefix><group>`): see {@link KafkaSubscription}
 *   for ordering, commits, retries and rebalances.
 * - Dead letters go to `<prefix><topic>.dead-letters` (compacted, one partition, keyed by
 *   dead-letter id); a redrive publishes the event again with header `redrive-group` (only that
 *   group handles it) and writes a tombstone for the dead letter.
 * - Replay: {@link resetGroup} commits the offsets of a time (ListOffsets by timestamp), the start
 *   or the end — while the group has no live member, as Kafka requires.
 */
export class KafkaEventBus implements EventBus {
  /** One key's envelopes land in the order handed over (see BatchingProducer): the relay sends a key's rows together. */
  readonly keepsKeyOrder = true;
  private readonly prefix: string;
  private readonly clientId: string;
  private readonly brokers: string[];
  private readonly logger: Logger;
  private readonly metrics: EventMetrics;
  private readonly requestTimeoutMs: number;
  private readonly settings: KafkaSubscriptionSettings;
  private readonly admin: Admin;
  private readonly reader: Consumer<string, string, string, string>;
  private readonly producer: Producer<string, string, string, string>;
  private readonly batches: BatchingProducer;
  private readonly topicsAdmin: KafkaTopics;
  private readonly offsets: KafkaGroupOffsets;
  private readonly deadLetterReader: KafkaDeadLetterReader;
  private readonly subscriptions = new Set<KafkaSubscription<EventDefinition>>();
  private readonly recoveredListeners = new Set<() => void>();
  private readonly publishTimeoutMs: number;
  private closing: Promise<void> | undefined;

  constructor(options: KafkaEventBusOptions) {
    if (options.brokers.length === 0) throw new TypeError('KafkaEventBus needs at least one broker');
    this.brokers = [...options.brokers];
    this.prefix = options.prefix ?? DEFAULTS.prefix;
    this.clientId = options.clientId ?? DEFAULTS.clientId;
    this.logger = options.logger ?? createLogger({ service: 'event-bus' });
    this.metrics = eventMetrics(options.registry);
    this.requestTimeoutMs = positive('requestTimeoutMs', options.requestTimeoutMs ?? DEFAULTS.requestTimeoutMs);
    this.settings = {
      maxDeliveries: positive('maxDeliveries', options.maxDeliveries ?? DEFAULTS.maxDeliveries),
      retryBackoffMs: positive('retryBackoffMs', options.retryBackoffMs ?? DEFAULTS.retryBackoffMs),
      maxBufferedEvents: positive('maxBufferedEvents', options.maxBufferedEvents ?? DEFAULTS.maxBufferedEvents),
      closeTimeoutMs: options.closeTimeoutMs ?? DEFAULTS.closeTimeoutMs,
      sessionTimeoutMs: positive('sessionTimeoutMs', options.sessionTimeoutMs ?? DEFAULTS.sessionTimeoutMs),
      commitIntervalMs: DEFAULTS.commitIntervalMs,
    };
    const base = { bootstrapBrokers: this.brokers, timeout: this.requestTimeoutMs, retries: 2, retryDelay: 250 };
    this.admin = new Admin({ ...base, clientId: `${this.clientId}-admin` });
    this.reader = new Consumer({ ...base, clientId: `${this.clientId}-reader`, groupId: `${this.prefix}civildiy-reader`, deserializers: stringDeserializers });
    this.producer = new Producer({ ...base, clientId: `${this.clientId}-producer`, idempotent: true, serializers: stringSerializers });
    this.publishTimeoutMs = positive('publishTimeoutMs', options.publishTimeoutMs ?? DEFAULTS.publishTimeoutMs);
    this.batches = new BatchingProducer(this.producer, {
      onRecovered: () => {
        this.logger.info('Kafka takes events again');
        for (const listener of this.recoveredListeners) listener();
      },
    });
    this.topicsAdmin = new KafkaTopics(this.admin, this.reader, {
      partitions: positive('partitions', options.partitions ?? DEFAULTS.partitions),
      replicationFactor: positive('replicationFactor', options.replicationFactor ?? DEFAULTS.replicationFactor),
      retentionMs: positive('retentionMs', options.retentionMs ?? DEFAULTS.retentionMs),
    });
    this.offsets = new KafkaGroupOffsets(this.admin, this.reader);
    this.deadLetterReader = new KafkaDeadLetterReader(this.reader);
  }

  /** {@inheritDoc EventBus.publish} */
  async publish<E extends EventDefinition>(event: E, data: z.input<E['data']>, options?: EnvelopeOptions): Promise<EventEnvelope<EventData<E>>> {
    const envelope = createEnvelope(event, data, options);
    await this.publishEnvelope(envelope);
    return envelope;
  }

  /** {@inheritDoc EventBus.publishEnvelope} */
  async publishEnvelope(envelope: EventEnvelope): Promise<void> {
    assertPublishable(envelope);
    await this.send(envelope);
    this.metrics.published.inc({ topic: envelope.topic, type: envelope.type });
  }

  /** {@inheritDoc EventBus.subscribe} */
  subscribe<E extends EventDefinition>(options: SubscribeOptions<E>): Subscription {
    if (this.closing) throw new Error('The event bus is closed');
    if (!options.group) throw new TypeError('subscribe needs a group');
    if (options.events.length === 0) throw new TypeError('subscribe needs at least one event definition');
    if (options.concurrency !== undefined) positive('concurrency', options.concurrency);
    const topics = new Map<string, string>();
    for (const event of options.events) topics.set(event.topic, topicName(this.prefix, event.topic));
    const from: GroupPosition = (options.startFrom ?? 'beginning') === 'beginning' ? 'start' : 'end';
    const consumer = options.consumer ?? `${hostname()}-${process.pid}-${randomBytes(4).toString('hex')}`;
    const group = groupName(this.prefix, options.group);
    const subscription: KafkaSubscription<E> = new KafkaSubscription<E>({
      options,
      consumer,
      topics,
      createConsumer: () =>
        new Consumer({
          clientId: `${this.clientId}-${consumer}`,
          bootstrapBrokers: this.brokers,
          groupId: group,
          timeout: this.requestTimeoutMs,
          retries: 2,
          retryDelay: 250,
          deserializers: stringDeserializers,
        }),
      ensureGroup: async (topic) => {
        await this.createGroup(topic, options.group, from);
      },
      deadLetter: (topic, record) => this.writeDeadLetter(topic, randomUUID(), record),
      stats: (topic) => this.stats(topic, options.group),
      logger: this.logger,
      metrics: this.metrics,
      settings: this.settings,
      onClosed: () => this.subscriptions.delete(subscription as unknown as KafkaSubscription<EventDefinition>),
    });
    this.subscriptions.add(subscription as unknown as KafkaSubscription<EventDefinition>);
    subscription.start();
    return subscription;
  }

  /** {@inheritDoc EventBus.createGroup} */
  async createGroup(topic: string, group: string, from: GroupPosition = 'start'): Promise<boolean> {
    const name = topicName(this.prefix, topic);
    await this.topicsAdmin.ensureEventTopic(name);
    const id = groupName(this.prefix, group);
    if ((await this.offsets.position(id, name)).exists) return false;
    try {
      await this.offsets.place(id, name, from);
    } catch (error) {
      // Another member of the group placed it first (and is consuming): it exists.
      if ((await this.offsets.position(id, name)).exists) return false;
      throw error;
    }
    return true;
  }

  /** {@inheritDoc EventBus.resetGroup} */
  async resetGroup(topic: string, group: string, to: GroupPosition): Promise<void> {
    const name = topicName(this.prefix, topic);
    await this.topicsAdmin.ensureEventTopic(name);
    try {
      await this.offsets.place(groupName(this.prefix, group), name, to);
    } catch (error) {
      if (error instanceof TypeError) throw error;
      throw new Error(`Could not reset group ${group} on ${topic}: Kafka moves a group only while it has no live member (stop its consumers first)`, { cause: error });
    }
  }

  /** {@inheritDoc EventBus.deleteGroup} */
  async deleteGroup(topic: string, group: string): Promise<boolean> {
    const name = topicName(this.prefix, topic);
    const id = groupName(this.prefix, group);
    if (!(await this.topicExists(name)) || !(await this.offsets.position(id, name)).exists) return false;
    await this.offsets.forget(id, name);
    return true;
  }

  /** {@inheritDoc EventBus.groups} */
  async groups(topic: string): Promise<GroupInfo[]> {
    const name = topicName(this.prefix, topic);
    if (!(await this.topicExists(name))) return [];
    const ids = [...(await this.admin.listGroups()).keys()].filter((id) => id.startsWith(this.prefix));
    if (ids.length === 0) return [];
    const described = await this.admin.describeGroups({ groups: ids });
    const infos: GroupInfo[] = [];
    for (const id of ids) {
      const members = [...(described.get(id)?.members.values() ?? [])];
      const assigned = members.some((member) => [...(member.assignments?.values() ?? [])].some((assignment) => assignment.topic === name));
      const position = await this.offsets.position(id, name);
      if (!position.exists && !assigned) continue;
      infos.push({
        name: id.slice(this.prefix.length),
        consumers: members.length,
        pending: 0,
        lag: position.partitions.reduce((sum, partition) => sum + partition.lag, 0),
        lastDeliveredId: position.partitions.map((partition) => `${partition.partition}:${partition.committed ?? ''}`).join(','),
        partitions: position.partitions,
      });
    }
    return infos;
  }

  /** {@inheritDoc EventBus.deadLetters} */
  async deadLetters(topic: string, options: { limit?: number } = {}): Promise<DeadLetter[]> {
    const name = deadLetterTopicName(this.prefix, topic);
    if (!(await this.topicExists(name))) return [];
    const stored = await this.deadLetterReader.read(name);
    return stored.slice(0, options.limit ?? 100).map((item) => toDeadLetter(topic, item));
  }

  /** {@inheritDoc EventBus.redriveDeadLetter} */
  async redriveDeadLetter(topic: string, id: string): Promise<boolean> {
    const found = await this.findDeadLetter(topic, id);
    if (!found) return false;
    await this.topicsAdmin.ensureEventTopic(topicName(this.prefix, topic));
    const headers = { [HEADER.redriveGroup]: found.group, [HEADER.redrivenFrom]: id };
    // The stored text as it was published (even one that is not a valid envelope: the group dead-letters it again).
    const envelope = found.envelope;
    const message = envelope
      ? envelopeMessage(this.prefix, envelope, headers)
      : { topic: topicName(this.prefix, topic), key: found.key, value: found.raw, headers };
    await this.batches.send(message);
    await this.writeDeadLetter(topic, id, undefined);
    return true;
  }

  /** {@inheritDoc EventBus.discardDeadLetter} */
  async discardDeadLetter(topic: string, id: string): Promise<boolean> {
    if (!(await this.findDeadLetter(topic, id))) return false;
    await this.writeDeadLetter(topic, id, undefined);
    return true;
  }

  /** {@inheritDoc EventBus.ping} */
  async ping(): Promise<void> {
    const signal = AbortSignal.timeout(PING_TIMEOUT_MS);
    await new Promise<void>((resolve, reject) => {
      signal.addEventListener('abort', () => reject(new Error(`Kafka did not answer within ${PING_TIMEOUT_MS} ms (${this.brokers.join(',')})`)), { once: true });
      this.admin.metadata({ topics: [], forceUpdate: true }).then(() => resolve(), reject);
    });
  }

  /** {@inheritDoc EventBus.onRecovered} */
  onRecovered(listener: () => void): () => void {
    this.recoveredListeners.add(listener);
    return () => this.recoveredListeners.delete(listener);
  }

  /** {@inheritDoc EventBus.close} */
  async close(): Promise<void> {
    this.closing ??= (async () => {
      await Promise.all([...this.subscriptions].map((subscription) => subscription.close()));
      await Promise.allSettled([this.producer.close(), this.reader.close(true), this.admin.close()]);
    })();
    return this.closing;
  }

  // ---- internals -----------------------------------------------------------------------------

  /**
   * Sends an envelope, giving up after `publishTimeoutMs` (the client itself retries an idempotent
   * send until the broker takes it: the send goes on, and asking again shares it, see BatchingProducer).
   */
  private async send(envelope: EventEnvelope): Promise<void> {
    const message = envelopeMessage(this.prefix, envelope);
    const signal = AbortSignal.timeout(this.publishTimeoutMs);
    const sent = (async () => {
      await this.topicsAdmin.ensureEventTopic(message.topic);
      await this.batches.send(message, envelope.id);
    })();
    await new Promise<void>((resolve, reject) => {
      const giveUp = () => {
        this.batches.markUnavailable();
        reject(new Error(`Kafka did not take event ${envelope.id} within ${this.publishTimeoutMs} ms (is the broker up?); the send goes on and may still land`));
      };
      signal.addEventListener('abort', giveUp, { once: true });
      sent.then(resolve, reject).finally(() => signal.removeEventListener('abort', giveUp));
    });
  }

  /** Appends a dead letter, or its tombstone when `record` is undefined. */
  private async writeDeadLetter(topic: string, id: string, record: DeadLetterRecord | undefined): Promise<void> {
    const name = deadLetterTopicName(this.prefix, topic);
    await this.topicsAdmin.ensureDeadLetterTopic(name);
    await this.batches.send({ topic: name, key: id, value: record === undefined ? undefined : JSON.stringify(record), headers: {} });
  }

  private async findDeadLetter(topic: string, id: string): Promise<(DeadLetter & { key: string }) | undefined> {
    const name = deadLetterTopicName(this.prefix, topic);
    if (!(await this.topicExists(name))) return undefined;
    const stored = (await this.deadLetterReader.read(name)).find((item) => item.id === id);
    return stored ? { ...toDeadLetter(topic, stored), key: stored.record.key } : undefined;
  }

  private async topicExists(name: string): Promise<boolean> {
    return (await this.admin.listTopics()).includes(name);
  }

  private async stats(topic: string, group: string): Promise<GroupStats | undefined> {
    const name = topicName(this.prefix, topic);
    const position = await this.offsets.position(groupName(this.prefix, group), name);
    return { lag: position.partitions.reduce((sum, partition) => sum + partition.lag, 0), pending: 0, partitions: position.partitions };
  }
}
