import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import type { Redis } from 'ioredis';
import type { Registry } from 'prom-client';
import type { z } from 'zod';
import { createLogger, type Logger } from '../logging/index.ts';
import { createRedis } from '../redis/index.ts';
import { assertPublishable, createEnvelope, EventEnvelope, type EnvelopeOptions, type EventData, type EventDefinition } from './define.ts';
import type { DeadLetter, DeadLetterReason, EventBus, GroupInfo, GroupPosition, SubscribeOptions, Subscription } from './event-bus.ts';
import { eventMetrics, type EventMetrics } from './event-metrics.ts';
import { DELETE_CONSUMER_IF_IDLE, RedisStreamSubscription, type SubscriptionSettings } from './redis-stream-subscription.ts';
import { errorMessage, idBefore, infoToRecord, parseEntries, STREAM_ID } from './stream-replies.ts';

/** Options of {@link RedisStreamsEventBus}. */
export interface RedisStreamsEventBusOptions {
  /**
   * A Redis URL (the bus opens and closes its own connection) or an ioredis client (used for
   * commands and left open by `close()`). Each subscription also opens one blocking connection of
   * its own (a duplicate of the client, or a new connection to the URL).
   */
  connection: string | Redis;
  /** Prefix of every key: streams are `<prefix>events:<topic>`, dead letters `<prefix>events:<topic>:dead`. Default: `civildiy:`. */
  prefix?: string;
  /** Default: a logger for service `event-bus`. */
  logger?: Logger;
  /**
   * How long events are kept. Every publish trims entries older than this (approximately, cheaply);
   * consumers also trim exactly every `trimIntervalMs`. Dead letters are never trimmed.
   * Default: 7 days.
   */
  retentionMs?: number;
  /** Deliveries to one group before a failing event is dead-lettered for that group. Default: 5. */
  maxDeliveries?: number;
  /**
   * An unacknowledged event idle this long (its handler failed, or its consumer died) is claimed
   * and delivered again. Consumers heart-beat the events they are handling, so a slow handler is
   * not taken over while its process lives. This is also the delay before a retry. Default: 30 s.
   */
  claimIdleMs?: number;
  /** How often each consumer looks for idle events to claim. Default: `claimIdleMs / 2`, at most 10 s. */
  claimIntervalMs?: number;
  /** Longest wait of one blocking read (closing interrupts it at once). Default: 5 s. */
  blockMs?: number;
  /** Most events fetched by one read or claim, never more than the subscription's free handler slots (`concurrency`). Default: 10. */
  batchSize?: number;
  /** How often consumers trim their topics to `retentionMs` and forget long-gone consumers. Default: 60 s. */
  trimIntervalMs?: number;
  /**
   * A consumer that holds no events and was not seen for this long is removed from its group (a
   * crashed process's name). Never less than twice `blockMs` and `claimIntervalMs`. Redis 7.0
   * does not count empty reads as activity, so a live consumer of a quiet topic may be removed
   * too: harmless, Redis recreates it with its next delivery. Default: 1 hour.
   */
  consumerIdleTimeoutMs?: number;
  /** How long `Subscription.close()` waits for running handlers. Default: 10 s. */
  closeTimeoutMs?: number;
  /** Where the metrics are registered. Default: prom-client's global registry. */
  registry?: Registry;
  /** Name of the bus's connections (`CLIENT LIST`). Default: `civildiy-events`. */
  connectionName?: string;
}

const DEFAULTS = {
  prefix: 'civildiy:',
  retentionMs: 7 * 24 * 60 * 60 * 1000,
  maxDeliveries: 5,
  claimIdleMs: 30_000,
  blockMs: 5_000,
  batchSize: 10,
  trimIntervalMs: 60_000,
  consumerIdleTimeoutMs: 60 * 60 * 1000,
  closeTimeoutMs: 10_000,
  connectionName: 'civildiy-events',
} as const;

// Moves a dead letter back to its topic for its group only, atomically (no double redrive).
const REDRIVE = `
local found = redis.call('XRANGE', KEYS[1], ARGV[1], ARGV[1])
if #found == 0 then return 0 end
local fields = found[1][2]
local byName = {}
for i = 1, #fields, 2 do byName[fields[i]] = fields[i + 1] end
local args = {KEYS[2], 'MINID', '~', ARGV[2], '*'}
for _, name in ipairs({'type', 'version', 'envelope', 'group'}) do
  if byName[name] then table.insert(args, name); table.insert(args, byName[name]) end
end
table.insert(args, 'redrivenFrom'); table.insert(args, ARGV[1])
redis.call('XADD', unpack(args))
redis.call('XDEL', KEYS[1], ARGV[1])
return 1`;

function positiveInteger(name: string, value: number): number {
  if (!Number.isFinite(value) || value <= 0) throw new TypeError(`${name} must be a positive number`);
  return value;
}

/**
 * The default {@link EventBus}: one Redis stream per topic (`<prefix>events:<topic>`), one consumer
 * group per subscribing service, time-based retention, idle events claimed with XAUTOCLAIM, and a
 * dead-letter stream per topic (`<prefix>events:<topic>:dead`).
 *
 * ```ts
 * const bus = new RedisStreamsEventBus({ connection: config.REDIS_URL, logger });
 * const subscription = bus.subscribe({ group: 'feed-service', events: [postCreated, postDeleted], handle });
 * ```
 */
export class RedisStreamsEventBus implements EventBus {
  private readonly redis: Redis;
  private readonly ownsRedis: boolean;
  private readonly url: string | undefined;
  private readonly prefix: string;
  private readonly logger: Logger;
  private readonly retentionMs: number;
  private readonly settings: SubscriptionSettings;
  private readonly trimIntervalMs: number;
  private readonly consumerIdleTimeoutMs: number;
  private readonly connectionName: string;
  private readonly metrics: EventMetrics;
  private readonly subscriptions = new Set<RedisStreamSubscription<EventDefinition>>();
  private maintenanceTimer: NodeJS.Timeout | undefined;
  private closing: Promise<void> | undefined;

  constructor(options: RedisStreamsEventBusOptions) {
    this.prefix = options.prefix ?? DEFAULTS.prefix;
    this.logger = options.logger ?? createLogger({ service: 'event-bus' });
    this.connectionName = options.connectionName ?? DEFAULTS.connectionName;
    this.retentionMs = positiveInteger('retentionMs', options.retentionMs ?? DEFAULTS.retentionMs);
    const claimIdleMs = positiveInteger('claimIdleMs', options.claimIdleMs ?? DEFAULTS.claimIdleMs);
    this.settings = {
      maxDeliveries: positiveInteger('maxDeliveries', options.maxDeliveries ?? DEFAULTS.maxDeliveries),
      claimIdleMs,
      claimIntervalMs: positiveInteger('claimIntervalMs', options.claimIntervalMs ?? Math.min(Math.max(10, Math.floor(claimIdleMs / 2)), 10_000)),
      blockMs: positiveInteger('blockMs', options.blockMs ?? DEFAULTS.blockMs),
      batchSize: positiveInteger('batchSize', options.batchSize ?? DEFAULTS.batchSize),
      closeTimeoutMs: options.closeTimeoutMs ?? DEFAULTS.closeTimeoutMs,
    };
    this.trimIntervalMs = positiveInteger('trimIntervalMs', options.trimIntervalMs ?? DEFAULTS.trimIntervalMs);
    // A live consumer touches the group at least every blockMs (reads) and claimIntervalMs (claims).
    this.consumerIdleTimeoutMs = Math.max(
      positiveInteger('consumerIdleTimeoutMs', options.consumerIdleTimeoutMs ?? DEFAULTS.consumerIdleTimeoutMs),
      2 * this.settings.blockMs,
      2 * this.settings.claimIntervalMs,
    );
    this.metrics = eventMetrics(options.registry);
    if (typeof options.connection === 'string') {
      this.url = options.connection;
      this.redis = createRedis(options.connection, { name: this.connectionName, logger: this.logger });
      this.ownsRedis = true;
    } else {
      this.redis = options.connection;
      this.ownsRedis = false;
    }
  }

  /** The stream key of a topic. */
  streamKey(topic: string): string {
    return `${this.prefix}events:${topic}`;
  }

  /** The dead-letter stream key of a topic. */
  deadLetterKey(topic: string): string {
    return `${this.streamKey(topic)}:dead`;
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
    await this.redis.call(
      'XADD', this.streamKey(envelope.topic), 'MINID', '~', this.retentionThreshold(), '*',
      'type', envelope.type, 'version', envelope.version, 'envelope', JSON.stringify(envelope),
    );
    this.metrics.published.inc({ topic: envelope.topic, type: envelope.type });
  }

  /** {@inheritDoc EventBus.subscribe} */
  subscribe<E extends EventDefinition>(options: SubscribeOptions<E>): Subscription {
    if (this.closing) throw new Error('The event bus is closed');
    if (!options.group) throw new TypeError('subscribe needs a group');
    if (options.events.length === 0) throw new TypeError('subscribe needs at least one event definition');
    const streams = new Map<string, string>();
    for (const event of options.events) streams.set(event.topic, this.streamKey(event.topic));
    const from: GroupPosition = (options.startFrom ?? 'beginning') === 'beginning' ? 'start' : 'end';
    const ensureGroup = async (topic: string) => {
      await this.createGroup(topic, options.group, from);
    };
    if (options.concurrency !== undefined) positiveInteger('concurrency', options.concurrency);

    const consumer = options.consumer ?? `${hostname()}-${process.pid}-${randomBytes(4).toString('hex')}`;
    const subscription: RedisStreamSubscription<E> = new RedisStreamSubscription<E>({
      options,
      consumer,
      redis: this.redis,
      blocking: this.blockingConnection(`${this.connectionName}:${options.group}:${consumer}`),
      streams,
      ensureGroup,
      logger: this.logger,
      metrics: this.metrics,
      settings: this.settings,
      onClosed: () => {
        this.subscriptions.delete(subscription as unknown as RedisStreamSubscription<EventDefinition>);
        if (this.subscriptions.size === 0) clearTimeout(this.maintenanceTimer);
      },
    });
    this.subscriptions.add(subscription as unknown as RedisStreamSubscription<EventDefinition>);
    subscription.start();
    if (this.subscriptions.size === 1) this.scheduleMaintenance();
    return subscription;
  }

  /** {@inheritDoc EventBus.createGroup} */
  async createGroup(topic: string, group: string, from: GroupPosition = 'start'): Promise<boolean> {
    try {
      await this.redis.call('XGROUP', 'CREATE', this.streamKey(topic), group, this.positionId(from), 'MKSTREAM');
      return true;
    } catch (error) {
      if (errorMessage(error).startsWith('BUSYGROUP')) return false;
      throw error;
    }
  }

  /** {@inheritDoc EventBus.resetGroup} */
  async resetGroup(topic: string, group: string, to: GroupPosition): Promise<void> {
    const id = this.positionId(to);
    for (let attempt = 0; attempt < 3; attempt++) {
      try {
        await this.redis.call('XGROUP', 'SETID', this.streamKey(topic), group, id);
        return;
      } catch (error) {
        const message = errorMessage(error);
        if (!message.startsWith('NOGROUP') && !message.includes('requires the key to exist')) throw error;
      }
      if (await this.createGroup(topic, group, to)) return;
    }
  }

  /** {@inheritDoc EventBus.deleteGroup} */
  async deleteGroup(topic: string, group: string): Promise<boolean> {
    try {
      return Number(await this.redis.call('XGROUP', 'DESTROY', this.streamKey(topic), group)) === 1;
    } catch (error) {
      if (errorMessage(error).includes('requires the key to exist')) return false;
      throw error;
    }
  }

  /** {@inheritDoc EventBus.groups} */
  async groups(topic: string): Promise<GroupInfo[]> {
    let reply: unknown;
    try {
      reply = await this.redis.call('XINFO', 'GROUPS', this.streamKey(topic));
    } catch (error) {
      if (errorMessage(error).includes('no such key')) return [];
      throw error;
    }
    return (reply as unknown[]).map((raw) => {
      const info = infoToRecord(raw);
      return {
        name: String(info.name),
        consumers: Number(info.consumers),
        pending: Number(info.pending),
        lag: info.lag === null || info.lag === undefined ? null : Number(info.lag),
        lastDeliveredId: String(info['last-delivered-id']),
      };
    });
  }

  /** {@inheritDoc EventBus.deadLetters} */
  async deadLetters(topic: string, options: { limit?: number } = {}): Promise<DeadLetter[]> {
    const reply = await this.redis.call('XRANGE', this.deadLetterKey(topic), '-', '+', 'COUNT', options.limit ?? 100);
    return parseEntries(reply).map(({ id, fields }) => {
      const record = fields ?? {};
      const raw = record.envelope ?? '';
      let envelope: EventEnvelope | undefined;
      try {
        const parsed = EventEnvelope.safeParse(JSON.parse(raw));
        if (parsed.success) envelope = parsed.data;
      } catch {
        // A malformed envelope is exactly what `raw` is kept for.
      }
      let error: DeadLetter['error'] = { name: 'Error', message: record.error ?? '' };
      try {
        error = JSON.parse(record.error ?? '') as DeadLetter['error'];
      } catch {
        // Keep the text as the message.
      }
      return {
        id,
        topic,
        group: record.group ?? '',
        consumer: record.consumer ?? '',
        sourceId: record.sourceId ?? '',
        reason: (record.reason ?? 'max_deliveries') as DeadLetterReason,
        error,
        deliveries: Number(record.deliveries ?? 0),
        failedAt: record.failedAt ?? '',
        ...(envelope ? { envelope } : {}),
        raw,
      };
    });
  }

  /** {@inheritDoc EventBus.redriveDeadLetter} */
  async redriveDeadLetter(topic: string, id: string): Promise<boolean> {
    if (!STREAM_ID.test(id)) return false;
    const moved = await this.redis.eval(REDRIVE, 2, this.deadLetterKey(topic), this.streamKey(topic), id, this.retentionThreshold());
    return Number(moved) === 1;
  }

  /** {@inheritDoc EventBus.discardDeadLetter} */
  async discardDeadLetter(topic: string, id: string): Promise<boolean> {
    if (!STREAM_ID.test(id)) return false;
    return Number(await this.redis.xdel(this.deadLetterKey(topic), id)) === 1;
  }

  /**
   * Deletes the topic's events older than `retentionMs` now (exactly; publishing trims only
   * approximately). Consumers run it every `trimIntervalMs`. Resolves with the number removed.
   * Specific to this adapter (Kafka applies retention itself).
   */
  async trim(topic: string): Promise<number> {
    return Number(await this.redis.call('XTRIM', this.streamKey(topic), 'MINID', this.retentionThreshold()));
  }

  /** {@inheritDoc EventBus.ping} */
  async ping(): Promise<void> {
    await this.redis.ping();
  }

  /** {@inheritDoc EventBus.onRecovered} */
  onRecovered(listener: () => void): () => void {
    // The first 'ready' is the initial connection, not a recovery.
    let connected = this.redis.status === 'ready';
    const onReady = () => {
      if (connected) listener();
      connected = true;
    };
    this.redis.on('ready', onReady);
    return () => this.redis.off('ready', onReady);
  }

  /** {@inheritDoc EventBus.close} */
  async close(): Promise<void> {
    this.closing ??= (async () => {
      clearTimeout(this.maintenanceTimer);
      await Promise.all([...this.subscriptions].map((subscription) => subscription.close()));
      if (this.ownsRedis) await this.redis.quit().catch(() => this.redis.disconnect());
    })();
    return this.closing;
  }

  // ---- internals -----------------------------------------------------------------------------

  private retentionThreshold(): number {
    return Math.max(0, Date.now() - this.retentionMs);
  }

  private positionId(position: GroupPosition): string {
    if (position instanceof Date) return idBefore(position);
    if (position === 'start') return '0-0';
    if (position === 'end') return '$';
    if (STREAM_ID.test(position)) return position;
    throw new TypeError(`Invalid stream position "${position}": expected 'start', 'end', a Date or an id like 1718000000000-0`);
  }

  private blockingConnection(name: string): Redis {
    if (this.url !== undefined) return createRedis(this.url, { name, logger: this.logger });
    const connection = this.redis.duplicate({ connectionName: name });
    let lastLogged = 0;
    connection.on('error', (error: Error) => {
      if (Date.now() - lastLogged < 5_000) return;
      lastLogged = Date.now();
      this.logger.warn({ err: error, connection: name }, 'redis connection error');
    });
    return connection;
  }

  private scheduleMaintenance(): void {
    clearTimeout(this.maintenanceTimer);
    this.maintenanceTimer = setTimeout(() => {
      void this.maintain().finally(() => {
        if (!this.closing && this.subscriptions.size > 0) this.scheduleMaintenance();
      });
    }, this.trimIntervalMs);
    this.maintenanceTimer.unref();
  }

  /** Trims the consumed topics to the retention window and removes consumers gone for good. */
  private async maintain(): Promise<void> {
    const groupsByTopic = new Map<string, Set<string>>();
    for (const subscription of this.subscriptions) {
      for (const topic of subscription.topics) groupsByTopic.set(topic, (groupsByTopic.get(topic) ?? new Set()).add(subscription.group));
    }
    for (const [topic, groups] of groupsByTopic) {
      try {
        const removed = await this.trim(topic);
        if (removed > 0) this.logger.debug({ topic, removed }, 'trimmed events past retention');
        for (const group of groups) await this.forgetIdleConsumers(topic, group);
      } catch (error) {
        this.logger.warn({ err: error, topic }, 'event stream maintenance failed');
      }
    }
  }

  private async forgetIdleConsumers(topic: string, group: string): Promise<void> {
    const stream = this.streamKey(topic);
    const consumers = (await this.redis.call('XINFO', 'CONSUMERS', stream, group)) as unknown[];
    for (const raw of consumers) {
      const info = infoToRecord(raw);
      if (Number(info.pending) === 0 && Number(info.idle) > this.consumerIdleTimeoutMs) {
        await this.redis.eval(DELETE_CONSUMER_IF_IDLE, 1, stream, group, String(info.name));
      }
    }
  }
}
