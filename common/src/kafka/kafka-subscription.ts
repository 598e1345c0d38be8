import { setTimeout as delay } from 'node:timers/promises';
import type { Consumer, GroupAssignment, Message, MessagesStream } from '@platformatic/kafka';
import { isPermanentError } from '../errors/index.ts';
import type { EventDefinition } from '../events/define.ts';
import type { DeadLetterReason, SubscribeOptions, Subscription } from '../events/event-bus.ts';
import type { ConsumeOutcome, EventMetrics, GroupStats } from '../events/event-metrics.ts';
import { EventRouter, parseEnvelope, serializeError, type ParsedEnvelope, type SerializedError } from '../events/event-routing.ts';
import type { Logger } from '../logging/index.ts';
import { header, HEADER, type DeadLetterRecord } from './kafka-records.ts';
import { PartitionProgress } from './partition-progress.ts';

type KafkaConsumer = Consumer<string, string, string, string>;
type KafkaMessage = Message<string, string, string, string>;

/** The adapter settings a subscription runs with (resolved defaults). */
export interface KafkaSubscriptionSettings {
  maxDeliveries: number;
  retryBackoffMs: number;
  maxBufferedEvents: number;
  closeTimeoutMs: number;
  sessionTimeoutMs: number;
  /** How often finished offsets are committed. */
  commitIntervalMs: number;
}

/** What the bus hands a subscription. */
export interface KafkaSubscriptionDeps<E extends EventDefinition> {
  options: SubscribeOptions<E>;
  /** This consumer's name (its client id on the broker). */
  consumer: string;
  /** Contract topic → broker topic. */
  topics: Map<string, string>;
  /** A new Kafka consumer of the (prefixed) group; the subscription closes it. */
  createConsumer(): KafkaConsumer;
  /** Creates the topic and places the group on it (at the subscription's `startFrom`) unless it has a position. */
  ensureGroup(topic: string): Promise<void>;
  /** Appends a dead letter to the topic's dead-letter topic; resolves once the broker has it. */
  deadLetter(topic: string, record: DeadLetterRecord): Promise<void>;
  /** The group's lag on a topic (metrics). */
  stats(topic: string): Promise<GroupStats | undefined>;
  logger: Logger;
  metrics: EventMetrics;
  settings: KafkaSubscriptionSettings;
  onClosed(): void;
}

/** One message this consumer holds (queued or being handled). */
interface Delivery {
  topic: string;
  partition: number;
  offset: bigint;
  raw: string;
  parsed: ParsedEnvelope;
  storedType: string | undefined;
  onlyGroup: string | undefined;
  key: string;
  /** The partition's progress when it was received: a rebalance that takes the partition away drops it, and its commits with it. */
  progress: PartitionProgress;
}

const MAX_RETRY_DELAY_MS = 30_000;
const RESTART_DELAY_MS = 1_000;

/**
 * One consumer of a group on one or more Kafka topics. Created by `KafkaEventBus.subscribe`.
 *
 * - Reads with `@platformatic/kafka`'s group consumer (partitions split among the group's members,
 *   taken over after a member stops heart-beating for `sessionTimeoutMs`), auto-commit off.
 * - Handles events of different keys concurrently (`concurrency`), one key strictly in order, and
 *   commits a partition's offset only past events that are finished (handled, skipped or
 *   dead-lettered): at least once, never lost.
 * - A failing event is retried in place with exponential backoff, holding back only its own key;
 *   after `maxDeliveries` it goes to the dead-letter topic, and its partition moves on.
 * - When the broker goes away the stream fails: the subscription waits for its handlers, drops the
 *   consumer and starts a new one every second until the broker answers; nothing is lost, some
 *   events may be handled twice (the inbox).
 */
export class KafkaSubscription<E extends EventDefinition> implements Subscription {
  readonly group: string;
  readonly consumer: string;
  readonly topics: readonly string[];
  readonly ready: Promise<void>;

  private readonly deps: KafkaSubscriptionDeps<E>;
  private readonly settings: KafkaSubscriptionSettings;
  private readonly concurrency: number;
  private readonly logger: Logger;
  private readonly router: EventRouter<E>;
  private readonly topicOf = new Map<string, string>();
  /** Aborts handlers that outlive the close timeout (their `ctx.signal`). */
  private readonly abort = new AbortController();
  /** Aborted when closing starts: stops back-off waits and restarts. */
  private readonly stopping = new AbortController();

  /** `topic:partition` → progress of the partitions this consumer owns. */
  private readonly progress = new Map<string, PartitionProgress>();
  /** Order key → deliveries waiting behind the one running. */
  private readonly chains = new Map<string, Delivery[]>();
  private readonly runnable: string[] = [];
  private readonly running = new Set<Promise<void>>();
  private readonly busyKeys = new Set<string>();
  private buffered = 0;

  private client: KafkaConsumer | undefined;
  /** Wakes the pulling loop once the buffer has room again. */
  private roomWaiters: (() => void)[] = [];
  private commitTimer: NodeJS.Timeout | undefined;
  private committing: Promise<void> = Promise.resolve();
  private loop: Promise<void> = Promise.resolve();
  private closing = false;
  private closed: Promise<void> | undefined;
  private untrack: (() => void) | undefined;
  private markReady!: () => void;

  constructor(deps: KafkaSubscriptionDeps<E>) {
    this.deps = deps;
    this.settings = deps.settings;
    this.group = deps.options.group;
    this.consumer = deps.consumer;
    this.topics = [...deps.topics.keys()];
    for (const [topic, brokerTopic] of deps.topics) this.topicOf.set(brokerTopic, topic);
    this.concurrency = Math.max(1, Math.floor(deps.options.concurrency ?? 1));
    this.logger = deps.logger.child({ group: this.group, consumer: this.consumer });
    this.router = new EventRouter(deps.options, deps.logger);
    this.ready = new Promise((resolve) => (this.markReady = resolve));
  }

  /** Creates the topics and places the group, then consumes until closed, restarting after a failure. */
  start(): void {
    const untracks = this.topics.map((topic) => this.deps.metrics.track({ topic, group: this.group, read: () => this.deps.stats(topic) }));
    this.untrack = () => untracks.forEach((untrack) => untrack());
    this.loop = this.run();
    this.scheduleCommit();
  }

  close(options: { timeoutMs?: number } = {}): Promise<void> {
    this.closed ??= this.shutdown(options.timeoutMs ?? this.settings.closeTimeoutMs);
    return this.closed;
  }

  // ---- the consumer's life -------------------------------------------------------------------

  private async run(): Promise<void> {
    while (!this.closing) {
      try {
        await Promise.all(this.topics.map((topic) => this.deps.ensureGroup(topic)));
        break;
      } catch (error) {
        this.logger.warn({ err: error }, 'could not create the topics or place the consumer group; retrying in 1 s');
        await this.pause(RESTART_DELAY_MS);
      }
    }
    while (!this.closing) {
      const failure = await this.consumeOnce();
      if (this.closing) break;
      this.logger.warn({ err: failure }, 'the Kafka consumer stopped; starting a new one in 1 s');
      await this.pause(RESTART_DELAY_MS);
    }
  }

  /** Runs one Kafka consumer until its stream fails or the subscription closes; resolves with the failure. */
  private async consumeOnce(): Promise<unknown> {
    const client = this.deps.createConsumer();
    this.client = client;
    const onJoin = (payload: { assignments?: GroupAssignment[] | null }) => this.onAssignment(payload.assignments ?? []);
    // A rebalance is starting: commit what is finished while this member's generation still counts,
    // so the partition's next owner does not handle it again.
    const onRebalance = () => void this.commit();
    client.on('consumer:group:join', onJoin);
    client.on('consumer:group:rebalance', onRebalance);
    let failure: unknown;
    try {
      const heartbeatInterval = Math.max(500, Math.min(3_000, Math.floor(this.settings.sessionTimeoutMs / 3)));
      const stream = await client.consume({
        topics: [...this.deps.topics.values()],
        mode: 'committed',
        // Every group is placed before it consumes (ensureGroup), so "no committed offset" only
        // means "placed before the partition's first event".
        fallbackMode: 'earliest',
        autocommit: false,
        sessionTimeout: this.settings.sessionTimeoutMs,
        rebalanceTimeout: Math.max(this.settings.sessionTimeoutMs, 10_000),
        heartbeatInterval,
        maxWaitTime: 500,
      });
      this.onAssignment(client.assignments ?? []);
      this.markReady();
      const stopped = new Promise<undefined>((resolve) => {
        if (this.closing) resolve(undefined);
        this.stopping.signal.addEventListener('abort', () => resolve(undefined), { once: true });
      });
      failure = await Promise.race([this.pull(stream), stopped]);
    } catch (error) {
      failure = error;
    }
    // Handlers still running belong to this consumer's assignment: let them finish (or give up on
    // closing) and commit what they finished before the group moves on without this member.
    await this.drain();
    await this.commit();
    client.off('consumer:group:join', onJoin);
    client.off('consumer:group:rebalance', onRebalance);
    await new Promise<void>((resolve) => {
      client.close(true, (error) => {
        if (error) this.logger.debug({ err: error }, 'closing the Kafka consumer failed');
        resolve();
      });
    });
    this.progress.clear();
    if (this.client === client) this.client = undefined;
    return failure;
  }

  /**
   * Reads the stream by async iteration, holding off while `maxBufferedEvents` are buffered: the
   * stream then stops fetching on its own (Node's backpressure). Pausing it instead stalls
   * `@platformatic/kafka` 1.x for good after a resume. Resolves with why it ended.
   */
  private async pull(stream: MessagesStream<string, string, string, string>): Promise<unknown> {
    try {
      for await (const message of stream) {
        this.receive(message as KafkaMessage);
        while (this.buffered >= this.settings.maxBufferedEvents && !this.closing) {
          await new Promise<void>((resolve) => this.roomWaiters.push(resolve));
        }
        if (this.closing) return undefined;
      }
      return new Error('the Kafka message stream ended');
    } catch (error) {
      return error;
    }
  }

  private wakePuller(): void {
    const waiters = this.roomWaiters;
    this.roomWaiters = [];
    for (const wake of waiters) wake();
  }

  /** After a (re)join: forget the partitions this member no longer owns (their events are someone else's now). */
  private onAssignment(assignments: GroupAssignment[]): void {
    const owned = new Set(assignments.flatMap(({ topic, partitions }) => partitions.map((partition) => `${topic}:${partition}`)));
    for (const key of this.progress.keys()) if (!owned.has(key)) this.progress.delete(key);
    this.logger.debug({ partitions: [...owned] }, 'partitions assigned');
  }

  private async pause(ms: number): Promise<void> {
    await delay(ms, undefined, { signal: this.stopping.signal }).catch(() => undefined);
  }

  // ---- receiving and scheduling ------------------------------------------------------------

  private receive(message: KafkaMessage): void {
    if (this.closing) return;
    const partitionKey = `${message.topic}:${message.partition}`;
    let progress = this.progress.get(partitionKey);
    if (!progress) this.progress.set(partitionKey, (progress = new PartitionProgress()));
    if (!progress.receive(message.offset)) return;
    const raw = message.value ?? '';
    const parsed = parseEnvelope(raw);
    const topic = this.topicOf.get(message.topic) ?? message.topic;
    const delivery: Delivery = {
      topic,
      partition: message.partition,
      offset: message.offset,
      raw,
      parsed,
      storedType: header(message.headers, HEADER.type),
      onlyGroup: header(message.headers, HEADER.redriveGroup),
      key: parsed.ok ? parsed.envelope.key : (message.key ?? ''),
      progress,
    };
    const orderKey = `${topic}\u0000${delivery.key}`;
    const chain = this.chains.get(orderKey);
    if (chain) chain.push(delivery);
    else {
      this.chains.set(orderKey, [delivery]);
      if (!this.busyKeys.has(orderKey)) this.runnable.push(orderKey);
    }
    this.buffered += 1;
    this.pump();
  }

  private pump(): void {
    while (!this.closing && this.running.size < this.concurrency && this.runnable.length > 0) {
      const orderKey = this.runnable.shift()!;
      const chain = this.chains.get(orderKey);
      const delivery = chain?.shift();
      if (!chain || !delivery) continue;
      if (chain.length === 0) this.chains.delete(orderKey);
      this.busyKeys.add(orderKey);
      const run: Promise<void> = this.process(delivery)
        .then(
          (finished) => {
            if (finished) delivery.progress.finish(delivery.offset);
          },
          (error: unknown) => this.logger.error({ err: error, partition: delivery.partition, offset: String(delivery.offset) }, 'event delivery failed unexpectedly'),
        )
        .finally(() => {
          this.running.delete(run);
          this.busyKeys.delete(orderKey);
          this.buffered -= 1;
          if (this.chains.has(orderKey)) this.runnable.push(orderKey);
          if (this.buffered < this.settings.maxBufferedEvents / 2) this.wakePuller();
          this.pump();
        });
      this.running.add(run);
    }
  }

  // ---- handling ------------------------------------------------------------------------------

  /** Handles one delivery; resolves `true` once it is finished (its offset may be committed). */
  private async process(delivery: Delivery): Promise<boolean> {
    const { topic } = delivery;
    const route = this.router.route(delivery, topic);
    if (route.action === 'skip') return this.count(topic, route.type, 'skipped');
    if (route.action === 'dead_letter') return this.deadLetter(delivery, route.type, route.reason, route.error, 1);
    const { type, envelope } = route;
    const { maxDeliveries } = this.settings;
    const labels = { topic, type, group: this.group };
    for (let attempt = 1; ; attempt++) {
      if (this.closing) return false;
      const logger = this.deps.logger.child({ topic, eventType: type, eventId: envelope.id, group: this.group, delivery: attempt });
      const stopTimer = this.deps.metrics.handlerDuration.startTimer(labels);
      try {
        await this.router.invoke(route, { logger, delivery: attempt, signal: this.abort.signal });
        stopTimer();
        return this.count(topic, type, 'ok');
      } catch (error) {
        stopTimer();
        if (isPermanentError(error)) return this.deadLetter(delivery, type, 'permanent', serializeError(error), attempt);
        if (attempt >= maxDeliveries) return this.deadLetter(delivery, type, 'max_deliveries', serializeError(error), attempt);
        const waitMs = Math.min(MAX_RETRY_DELAY_MS, this.settings.retryBackoffMs * 2 ** (attempt - 1));
        logger.warn({ err: error, retryInMs: waitMs }, `event handler failed (delivery ${attempt} of ${maxDeliveries}); it will be delivered again`);
        this.deps.metrics.consumed.inc({ ...labels, outcome: 'retried' });
        await this.pause(waitMs);
      }
    }
  }

  private count(topic: string, type: string, outcome: ConsumeOutcome): true {
    this.deps.metrics.consumed.inc({ topic, type, group: this.group, outcome });
    return true;
  }

  /** Writes the dead letter (retrying while the broker does not take it); `false` if closing first. */
  private async deadLetter(delivery: Delivery, type: string, reason: DeadLetterReason, error: SerializedError, deliveries: number): Promise<boolean> {
    const record: DeadLetterRecord = {
      group: this.group,
      consumer: this.consumer,
      sourceId: `${delivery.partition}:${delivery.offset}`,
      key: delivery.key,
      reason,
      error,
      deliveries,
      failedAt: new Date().toISOString(),
      raw: delivery.raw,
    };
    for (;;) {
      try {
        await this.deps.deadLetter(delivery.topic, record);
        break;
      } catch (writeError) {
        if (this.closing) return false;
        this.logger.warn({ err: writeError, partition: delivery.partition, offset: String(delivery.offset) }, 'dead-lettering failed; retrying in 1 s');
        await this.pause(RESTART_DELAY_MS);
      }
    }
    this.deps.metrics.consumed.inc({ topic: delivery.topic, type, group: this.group, outcome: 'dead_lettered' });
    this.logger.error(
      { topic: delivery.topic, eventType: type, eventId: delivery.parsed.ok ? delivery.parsed.envelope.id : undefined, reason, error, deliveries },
      'event dead-lettered',
    );
    return true;
  }

  // ---- committing ----------------------------------------------------------------------------

  private scheduleCommit(): void {
    this.commitTimer = setTimeout(() => {
      this.committing = this.commit().finally(() => {
        if (!this.closing) this.scheduleCommit();
      });
    }, this.settings.commitIntervalMs);
    this.commitTimer.unref();
  }

  /** Commits every owned partition's finished offsets. A failure (a rebalance, the broker away) is retried at the next tick. */
  private async commit(): Promise<void> {
    await this.committing.catch(() => undefined);
    const client = this.client;
    if (!client) return;
    const offsets: { topic: string; partition: number; offset: bigint; leaderEpoch: number; progress: PartitionProgress }[] = [];
    for (const [key, progress] of this.progress) {
      const offset = progress.toCommit();
      if (offset === undefined) continue;
      const separator = key.lastIndexOf(':');
      offsets.push({ topic: key.slice(0, separator), partition: Number(key.slice(separator + 1)), offset, leaderEpoch: -1, progress });
    }
    if (offsets.length === 0) return;
    try {
      await client.commit({ offsets: offsets.map(({ topic, partition, offset, leaderEpoch }) => ({ topic, partition, offset, leaderEpoch })) });
      for (const { progress, offset } of offsets) progress.markCommitted(offset);
    } catch (error) {
      this.logger.debug({ err: error }, 'committing offsets failed; retrying at the next tick');
    }
  }

  // ---- closing -------------------------------------------------------------------------------

  /** Waits for running handlers up to the close timeout (when closing), then aborts them. */
  private async drain(timeoutMs = this.settings.closeTimeoutMs): Promise<void> {
    // Queued deliveries are not started: they are fetched again from the committed offset.
    for (const chain of this.chains.values()) this.buffered -= chain.length;
    this.chains.clear();
    this.runnable.length = 0;
    if (this.running.size === 0) return;
    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<'timeout'>((resolve) => {
      timer = setTimeout(() => resolve('timeout'), timeoutMs);
    });
    const result = await Promise.race([Promise.allSettled([...this.running]), timedOut]);
    clearTimeout(timer);
    if (result === 'timeout') {
      this.logger.warn({ running: this.running.size }, 'event handlers still running; aborting them (their events are delivered again)');
      this.abort.abort(new Error('subscription closed'));
    }
  }

  private async shutdown(timeoutMs: number): Promise<void> {
    this.closing = true;
    this.stopping.abort();
    this.wakePuller();
    clearTimeout(this.commitTimer);
    await Promise.race([this.loop, delay(timeoutMs + 5_000)]);
    this.markReady();
    this.untrack?.();
    this.deps.onClosed();
  }
}
