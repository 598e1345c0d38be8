import { setTimeout as delay } from 'node:timers/promises';
import type { Redis } from 'ioredis';
import { isPermanentError } from '../errors/index.ts';
import type { Logger } from '../logging/index.ts';
import type { EventDefinition } from './define.ts';
import type { DeadLetterReason, SubscribeOptions, Subscription } from './event-bus.ts';
import type { ConsumeOutcome, EventMetrics } from './event-metrics.ts';
import { EventRouter, parseEnvelope, serializeError, type ParsedEnvelope, type SerializedError } from './event-routing.ts';
import { errorMessage, parseEntries, parseReadReply, recordToFields, type StreamEntry } from './stream-replies.ts';

/** The adapter settings a subscription runs with (resolved defaults). */
export interface SubscriptionSettings {
  maxDeliveries: number;
  claimIdleMs: number;
  claimIntervalMs: number;
  blockMs: number;
  batchSize: number;
  closeTimeoutMs: number;
}

/** What the bus hands a subscription. */
export interface SubscriptionDeps<E extends EventDefinition> {
  options: SubscribeOptions<E>;
  consumer: string;
  /** The bus's command connection (acks, claims, dead letters). */
  redis: Redis;
  /** A connection of its own for the blocking reads; closed by the subscription. */
  blocking: Redis;
  /** Topic → stream key. */
  streams: Map<string, string>;
  /** Creates the group on one topic if it does not exist (at the subscription's `startFrom`). */
  ensureGroup(topic: string): Promise<void>;
  logger: Logger;
  metrics: EventMetrics;
  settings: SubscriptionSettings;
  onClosed(): void;
}

/** One stream entry held by this consumer (queued or being handled). */
interface Delivery {
  ref: string;
  stream: string;
  topic: string;
  id: string;
  deliveries: number;
  raw: string;
  parsed: ParsedEnvelope;
  /** The `type` field stored next to the envelope (readable even when the envelope is not). */
  storedType: string | undefined;
  /** Only this group handles it (a redriven dead letter). */
  onlyGroup: string | undefined;
  /** Topic + aggregate key: deliveries with the same one are handled one at a time. */
  orderKey: string | undefined;
}

/** Removes a consumer from a group only if it holds no pending entries (atomically: none are lost). */
export const DELETE_CONSUMER_IF_IDLE = `
local pending = redis.call('XPENDING', KEYS[1], ARGV[1], '-', '+', 1, ARGV[2])
if #pending == 0 then return redis.call('XGROUP', 'DELCONSUMER', KEYS[1], ARGV[1], ARGV[2]) end
return -1`;

/** Appends the dead letter, then acknowledges the event; an XADD error aborts before the ack. */
const DEAD_LETTER = `
redis.call('XADD', KEYS[1], '*', unpack(ARGV, 3))
return redis.call('XACK', KEYS[2], ARGV[1], ARGV[2])`;

/** An idle time large enough for any consumer's claim threshold: released entries are claimed at once. */
const RELEASED_IDLE_MS = 24 * 60 * 60 * 1000;

/** A consumer of one group on one or more Redis streams. Created by `RedisStreamsEventBus.subscribe`. */
export class RedisStreamSubscription<E extends EventDefinition> implements Subscription {
  readonly group: string;
  readonly consumer: string;
  readonly topics: readonly string[];
  readonly ready: Promise<void>;

  private readonly deps: SubscriptionDeps<E>;
  private readonly settings: SubscriptionSettings;
  private readonly concurrency: number;
  private readonly logger: Logger;
  private readonly router: EventRouter<E>;
  private readonly topicOf = new Map<string, string>();
  /** Aborts handlers that outlive the close timeout (their `ctx.signal`). */
  private readonly abort = new AbortController();
  /** Aborted when closing starts: stops back-off waits. */
  private readonly stopping = new AbortController();

  private readonly queue: Delivery[] = [];
  private readonly held = new Map<string, Delivery>();
  private readonly active = new Map<string, Promise<void>>();
  private readonly activeKeys = new Set<string>();
  private slotWaiters: (() => void)[] = [];

  private closing = false;
  private closed: Promise<void> | undefined;
  private readLoop: Promise<void> = Promise.resolve();
  private claimPass: Promise<void> = Promise.resolve();
  private claimTimer: NodeJS.Timeout | undefined;
  private heartbeatTimer: NodeJS.Timeout | undefined;
  private untrack: (() => void) | undefined;
  private markReady!: () => void;

  constructor(deps: SubscriptionDeps<E>) {
    this.deps = deps;
    this.settings = deps.settings;
    this.group = deps.options.group;
    this.consumer = deps.consumer;
    this.topics = [...deps.streams.keys()];
    this.concurrency = Math.max(1, Math.floor(deps.options.concurrency ?? 1));
    this.logger = deps.logger.child({ group: this.group, consumer: this.consumer });
    this.ready = new Promise((resolve) => (this.markReady = resolve));
    for (const [topic, stream] of deps.streams) this.topicOf.set(stream, topic);
    this.router = new EventRouter(deps.options, deps.logger);
  }

  /** Creates the groups, then starts reading, claiming and heart-beating. */
  start(): void {
    const untracks = this.topics.map((topic) =>
      this.deps.metrics.track({ topic, group: this.group, read: () => this.groupStats(topic) }),
    );
    this.untrack = () => untracks.forEach((untrack) => untrack());
    this.readLoop = this.prepare().then(() => {
      this.markReady();
      if (this.closing) return;
      this.scheduleClaim();
      this.scheduleHeartbeat();
      return this.read();
    });
  }

  /** Creates the groups, retrying while Redis is unreachable. */
  private async prepare(): Promise<void> {
    while (!this.closing) {
      try {
        await Promise.all(this.topics.map((topic) => this.deps.ensureGroup(topic)));
        return;
      } catch (error) {
        await this.recover(error, 'group creation');
      }
    }
  }

  close(options: { timeoutMs?: number } = {}): Promise<void> {
    this.closed ??= this.shutdown(options.timeoutMs ?? this.settings.closeTimeoutMs);
    return this.closed;
  }

  // ---- reading -------------------------------------------------------------------------------

  private async read(): Promise<void> {
    const streams = [...this.deps.streams.values()];
    while (!this.closing) {
      await this.freeSlot();
      if (this.closing) break;
      const count = Math.max(1, Math.min(this.settings.batchSize, this.concurrency - this.active.size - this.queue.length));
      let reply: unknown;
      try {
        reply = await this.deps.blocking.call(
          'XREADGROUP', 'GROUP', this.group, this.consumer, 'COUNT', count, 'BLOCK', this.settings.blockMs,
          'STREAMS', ...streams, ...streams.map(() => '>'),
        );
      } catch (error) {
        if (this.closing) break;
        await this.recover(error, 'read');
        continue;
      }
      for (const { stream, entries } of parseReadReply(reply)) {
        for (const entry of entries) this.enqueue(stream, entry, 1);
      }
    }
  }

  /** After a failed command: recreate missing groups (a deleted stream), or back off. */
  private async recover(error: unknown, during: string): Promise<void> {
    if (errorMessage(error).startsWith('NOGROUP')) {
      this.logger.warn({ err: error }, `consumer group missing during ${during}; recreating it`);
      try {
        await Promise.all(this.topics.map((topic) => this.deps.ensureGroup(topic)));
        return;
      } catch (createError) {
        error = createError;
      }
    }
    this.logger.warn({ err: error }, `event ${during} failed; retrying in 1 s`);
    await delay(1_000, undefined, { signal: this.stopping.signal }).catch(() => undefined);
  }

  private freeSlot(): Promise<void> {
    if (this.closing || this.active.size + this.queue.length < this.concurrency) return Promise.resolve();
    return new Promise<void>((resolve) => this.slotWaiters.push(resolve)).then(() => this.freeSlot());
  }

  private wakeReaders(): void {
    const waiters = this.slotWaiters;
    this.slotWaiters = [];
    for (const wake of waiters) wake();
  }

  private enqueue(stream: string, entry: StreamEntry, deliveries: number): void {
    const topic = this.topicOf.get(stream) ?? stream;
    const ref = `${stream} ${entry.id}`;
    if (this.held.has(ref) || !entry.fields) return;
    const raw = entry.fields.envelope ?? '';
    const parsed = parseEnvelope(raw);
    const delivery: Delivery = {
      ref, stream, topic, id: entry.id, deliveries, raw, parsed,
      storedType: entry.fields.type,
      onlyGroup: entry.fields.group,
      orderKey: parsed.ok ? `${topic}\u0000${parsed.envelope.key}` : undefined,
    };
    this.held.set(ref, delivery);
    this.queue.push(delivery);
    this.pump();
  }

  private pump(): void {
    while (!this.closing && this.active.size < this.concurrency) {
      const index = this.queue.findIndex((d) => d.orderKey === undefined || !this.activeKeys.has(d.orderKey));
      if (index < 0) return;
      const [delivery] = this.queue.splice(index, 1);
      if (!delivery) return;
      if (delivery.orderKey !== undefined) this.activeKeys.add(delivery.orderKey);
      const run = this.process(delivery)
        .catch((error: unknown) => this.logger.error({ err: error, eventId: delivery.id }, 'event delivery failed unexpectedly'))
        .finally(() => {
          this.active.delete(delivery.ref);
          this.held.delete(delivery.ref);
          if (delivery.orderKey !== undefined) this.activeKeys.delete(delivery.orderKey);
          this.pump();
          this.wakeReaders();
        });
      this.active.set(delivery.ref, run);
    }
  }

  // ---- handling ------------------------------------------------------------------------------

  private async process(delivery: Delivery): Promise<void> {
    const { topic } = delivery;
    const route = this.router.route(delivery, topic);
    if (route.action === 'skip') return this.ack(delivery, route.type, 'skipped');
    if (route.action === 'dead_letter') return this.deadLetter(delivery, route.type, route.reason, route.error);
    const { type, envelope } = route;
    const { maxDeliveries } = this.settings;
    if (delivery.deliveries > maxDeliveries) {
      // Delivered that often without an ack or a recorded failure: consumers crashed while handling it.
      await this.deadLetter(delivery, type, 'max_deliveries', {
        name: 'DeliveryLimitError',
        message: `delivered ${delivery.deliveries - 1} times without being acknowledged (its consumers may have crashed while handling it)`,
        code: 'events.max_deliveries',
      });
      return;
    }

    const logger = this.deps.logger.child({ topic, eventType: type, eventId: envelope.id, group: this.group, delivery: delivery.deliveries });
    const labels = { topic, type, group: this.group };
    const stopTimer = this.deps.metrics.handlerDuration.startTimer(labels);
    try {
      await this.router.invoke(route, { logger, delivery: delivery.deliveries, signal: this.abort.signal });
    } catch (error) {
      stopTimer();
      if (isPermanentError(error)) {
        await this.deadLetter(delivery, type, 'permanent', serializeError(error));
      } else if (delivery.deliveries >= maxDeliveries) {
        await this.deadLetter(delivery, type, 'max_deliveries', serializeError(error));
      } else {
        logger.warn({ err: error }, `event handler failed (delivery ${delivery.deliveries} of ${maxDeliveries}); it will be delivered again`);
        this.deps.metrics.consumed.inc({ ...labels, outcome: 'retried' });
      }
      return;
    }
    stopTimer();
    await this.ack(delivery, type, 'ok');
  }

  private async ack(delivery: Delivery, type: string, outcome: ConsumeOutcome): Promise<void> {
    try {
      await this.deps.redis.xack(delivery.stream, this.group, delivery.id);
      this.deps.metrics.consumed.inc({ topic: delivery.topic, type, group: this.group, outcome });
    } catch (error) {
      this.logger.warn({ err: error, eventId: delivery.id }, 'event ack failed; it will be delivered again');
    }
  }

  private async deadLetter(delivery: Delivery, type: string, reason: DeadLetterReason, error: SerializedError): Promise<void> {
    const fields: Record<string, string> = {
      envelope: delivery.raw,
      topic: delivery.topic,
      type,
      ...(delivery.parsed.ok ? { version: String(delivery.parsed.envelope.version) } : {}),
      group: this.group,
      consumer: this.consumer,
      sourceId: delivery.id,
      reason,
      error: JSON.stringify(error),
      deliveries: String(delivery.deliveries),
      failedAt: new Date().toISOString(),
    };
    try {
      // Atomic: the group stops seeing the event exactly when its dead letter exists.
      await this.deps.redis.eval(DEAD_LETTER, 2, `${delivery.stream}:dead`, delivery.stream, this.group, delivery.id, ...recordToFields(fields));
      this.deps.metrics.consumed.inc({ topic: delivery.topic, type, group: this.group, outcome: 'dead_lettered' });
      this.logger.error(
        { topic: delivery.topic, eventType: type, eventId: delivery.parsed.ok ? delivery.parsed.envelope.id : undefined, reason, error, deliveries: delivery.deliveries },
        'event dead-lettered',
      );
    } catch (writeError) {
      this.logger.warn({ err: writeError, eventId: delivery.id }, 'dead-lettering failed; the event will be delivered again');
    }
  }

  // ---- claiming and heart-beating --------------------------------------------------------------

  private scheduleClaim(): void {
    this.claimTimer = setTimeout(() => {
      this.claimPass = this.claim()
        .catch((error: unknown) => this.recover(error, 'claim'))
        .finally(() => {
          if (!this.closing) this.scheduleClaim();
        });
    }, this.settings.claimIntervalMs);
    this.claimTimer.unref();
  }

  /** Takes over entries idle longer than `claimIdleMs` (failed, or held by a dead consumer). */
  private async claim(): Promise<void> {
    for (const stream of this.deps.streams.values()) {
      let cursor = '0-0';
      do {
        const free = this.concurrency - this.active.size - this.queue.length;
        if (free <= 0 || this.closing) return;
        const reply = (await this.deps.redis.call(
          'XAUTOCLAIM', stream, this.group, this.consumer, this.settings.claimIdleMs, cursor, 'COUNT', Math.min(free, this.settings.batchSize),
        )) as [string, unknown, unknown?];
        cursor = String(reply[0]);
        const entries = parseEntries(reply[1]);
        // Redis 6.2 returns entries deleted by trimming as nil; 7 removes them from the pending list itself.
        const gone = entries.filter((entry) => !entry.fields).map((entry) => entry.id);
        if (gone.length > 0) await this.deps.redis.xack(stream, this.group, ...gone);
        const live = entries.filter((entry) => entry.fields);
        if (live.length === 0) continue;
        const counts = await this.deliveryCounts(stream, live.map((entry) => entry.id));
        if (this.closing) {
          await this.release(live.map((entry) => ({ stream, id: entry.id })));
          return;
        }
        for (const entry of live) this.enqueue(stream, entry, counts.get(entry.id) ?? 2);
      } while (cursor !== '0-0');
    }
  }

  /** Delivery counts (XPENDING) of entries just claimed; XAUTOCLAIM has already counted the claim. */
  private async deliveryCounts(stream: string, ids: string[]): Promise<Map<string, number>> {
    const pipeline = this.deps.redis.pipeline();
    for (const id of ids) pipeline.call('XPENDING', stream, this.group, id, id, 1);
    const results = (await pipeline.exec()) ?? [];
    const counts = new Map<string, number>();
    for (const [error, value] of results) {
      if (error || !Array.isArray(value)) continue;
      for (const row of value as unknown[][]) counts.set(String(row[0]), Number(row[3]));
    }
    return counts;
  }

  /** Resets the idle time of every entry this consumer holds, so a long handler is not taken over. */
  private scheduleHeartbeat(): void {
    this.heartbeatTimer = setTimeout(() => {
      void this.touch(0)
        .catch((error: unknown) => this.logger.warn({ err: error }, 'event heartbeat failed'))
        .finally(() => {
          if (this.heartbeatTimer) this.scheduleHeartbeat();
        });
    }, Math.max(10, Math.floor(this.settings.claimIdleMs / 3)));
    this.heartbeatTimer.unref();
  }

  /** XCLAIM … JUSTID (does not count as a delivery) of held entries, setting their idle time. */
  private async touch(idleMs: number, entries: { stream: string; id: string }[] = [...this.held.values()]): Promise<void> {
    const byStream = new Map<string, string[]>();
    for (const { stream, id } of entries) byStream.set(stream, [...(byStream.get(stream) ?? []), id]);
    for (const [stream, ids] of byStream) {
      await this.deps.redis.call('XCLAIM', stream, this.group, this.consumer, 0, ...ids, 'IDLE', idleMs, 'JUSTID');
    }
  }

  /** Hands entries back to the group: they look long idle, so any consumer's next claim takes them. */
  private async release(entries: { stream: string; id: string }[]): Promise<void> {
    if (entries.length === 0) return;
    try {
      await this.touch(RELEASED_IDLE_MS, entries);
    } catch (error) {
      this.logger.warn({ err: error }, 'could not release held events; they are redelivered after claimIdleMs');
    }
  }

  private async groupStats(topic: string): Promise<{ lag: number | null; pending: number } | undefined> {
    const stream = this.deps.streams.get(topic);
    if (!stream) return undefined;
    const groups = (await this.deps.redis.call('XINFO', 'GROUPS', stream)) as unknown[][];
    for (const raw of groups) {
      const info = new Map<string, unknown>();
      for (let i = 0; i + 1 < raw.length; i += 2) info.set(String(raw[i]), raw[i + 1]);
      if (info.get('name') !== this.group) continue;
      const lag = info.get('lag');
      return { lag: lag === null || lag === undefined ? null : Number(lag), pending: Number(info.get('pending') ?? 0) };
    }
    return undefined;
  }

  // ---- closing -------------------------------------------------------------------------------

  private async shutdown(timeoutMs: number): Promise<void> {
    this.closing = true;
    this.stopping.abort();
    clearTimeout(this.claimTimer);
    this.wakeReaders();
    // Interrupts a blocked XREADGROUP at once. An entry Redis delivered just before stays pending
    // and is claimed later, as after a crash.
    this.deps.blocking.disconnect();
    // Group creation may wait on an unreachable Redis: do not let that hold the close forever.
    await Promise.race([this.readLoop, delay(timeoutMs)]);
    this.markReady();
    await this.claimPass.catch(() => undefined);

    const queued = this.queue.splice(0);
    for (const delivery of queued) this.held.delete(delivery.ref);
    await this.release(queued);

    if (this.active.size > 0) {
      let timer: NodeJS.Timeout | undefined;
      const timedOut = new Promise<'timeout'>((resolve) => {
        timer = setTimeout(() => resolve('timeout'), timeoutMs);
      });
      const result = await Promise.race([Promise.allSettled(this.active.values()), timedOut]);
      clearTimeout(timer);
      if (result === 'timeout') {
        this.logger.warn({ running: this.active.size }, 'event handlers still running at close; aborting them and releasing their events');
        this.abort.abort(new Error('subscription closed'));
        await this.release([...this.held.values()]);
      }
    }
    const heartbeat = this.heartbeatTimer;
    this.heartbeatTimer = undefined;
    clearTimeout(heartbeat);
    this.untrack?.();

    // Forget this consumer if it holds nothing, so random consumer names do not pile up in the group.
    for (const stream of this.deps.streams.values()) {
      try {
        await this.deps.redis.eval(DELETE_CONSUMER_IF_IDLE, 1, stream, this.group, this.consumer);
      } catch {
        // The group or stream is gone: nothing to forget.
      }
    }
    this.deps.onClosed();
  }
}
