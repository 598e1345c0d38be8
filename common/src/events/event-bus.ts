import type { z } from 'zod';
import type { Logger } from '../logging/index.ts';
import type { EnvelopeOptions, EnvelopePublisher, EventData, EventDefinition, EventEnvelope } from './define.ts';

/**
 * The envelope a handler receives for one of the definitions it subscribed to: a union with one
 * member per definition, its `data` already parsed by that definition's schema. Narrow it with
 * {@link isEvent}.
 */
export type EnvelopeOf<E extends EventDefinition> = E extends EventDefinition ? EventEnvelope<EventData<E>> : never;

/** The second argument of an {@link EventHandler}. */
export interface EventHandlerContext {
  /** A child of the bus logger carrying `topic`, `eventType`, `eventId`, `group` and `delivery`. */
  logger: Logger;
  /** How many times this event has been delivered to this group, this delivery included (1 the first time). */
  delivery: number;
  /**
   * Aborted when the subscription closes and the handler has not finished within the close timeout.
   * A handler that stops early should throw: the event is then delivered again later.
   */
  signal: AbortSignal;
}

/**
 * Handles one event. Runs inside `runWithContext({ correlationId, userId: actor, causationId: id })`
 * of the envelope, so logs, published events and enqueued tasks carry the same correlation id.
 * Resolving acknowledges the event; throwing a `PermanentError` dead-letters it at once; any other
 * error leaves it unacknowledged, to be delivered again (up to the bus's `maxDeliveries`).
 * Delivery is at least once: make handlers idempotent (the inbox).
 */
export type EventHandler<E extends EventDefinition> = (envelope: EnvelopeOf<E>, ctx: EventHandlerContext) => Promise<void> | void;

/** Where a consumer group starts reading, or is reset to. */
export type GroupPosition =
  /** The first event still retained. */
  | 'start'
  /** After the last event: only events published from now on. */
  | 'end'
  /** Events added to the topic at or after this time. */
  | Date
  /** A transport position (for Redis Streams an entry id such as `1718000000000-0`); reading continues after it. */
  | (string & {});

/** What {@link EventBus.subscribe} takes. */
export interface SubscribeOptions<E extends EventDefinition = EventDefinition> {
  /**
   * The consumer group: one per subscribing service (e.g. `feed-service`). Every group gets every
   * event; the consumers of one group share them. A rebuild of a read model subscribes under a new
   * group (e.g. `feed-service-rebuild-2`) and swaps when it has caught up.
   */
  group: string;
  /** This consumer's name inside the group. Default: `${hostname}-${pid}-${random}`. */
  consumer?: string;
  /**
   * The contracts to receive, possibly from several topics. Other types on those topics are
   * acknowledged and skipped; a known type in a version not listed here is skipped with a warning.
   */
  events: readonly E[];
  /** The handler, see {@link EventHandler}. */
  handle: EventHandler<E>;
  /**
   * Events handled in parallel by this consumer. Events with the same key (aggregate) are still
   * handled one at a time, in the order they were received. Default: 1.
   */
  concurrency?: number;
  /**
   * Where a group that does not exist yet starts: `'beginning'` (every retained event, so a new
   * service sees past events) or `'new'` (only events published after it is created). An existing
   * group keeps its position (use {@link EventBus.resetGroup} to move it). Default: `'beginning'`.
   */
  startFrom?: 'beginning' | 'new';
}

/** A running subscription (one consumer of one group). */
export interface Subscription {
  /** The consumer group. */
  readonly group: string;
  /** This consumer's name inside the group. */
  readonly consumer: string;
  /** The topics it reads. */
  readonly topics: readonly string[];
  /**
   * Resolves once the consumer group exists on every topic and the consumer is reading (creating
   * the group is retried while the broker is unreachable). Never rejects; resolves too if the
   * subscription is closed first. Await it before publishing when `startFrom` is `'new'`.
   */
  readonly ready: Promise<void>;
  /**
   * Stops reading at once (an idle blocking read is interrupted), waits for handlers in progress up
   * to `timeoutMs`, then aborts their `signal` and hands their events back to the group so another
   * consumer can take them without waiting. Idempotent.
   */
  close(options?: { /** Default: the bus's `closeTimeoutMs` (10 s). */ timeoutMs?: number }): Promise<void>;
}

/** Why an event was dead-lettered. */
export type DeadLetterReason =
  /** The stored entry is not a valid envelope. */
  | 'malformed'
  /** `data` failed the schema of the subscribed definition. */
  | 'invalid_data'
  /** The handler threw a `PermanentError`. */
  | 'permanent'
  /** It was delivered `maxDeliveries` times without being acknowledged. */
  | 'max_deliveries';

/** An event one consumer group could not handle, kept until it is redriven or discarded. */
export interface DeadLetter {
  /** The dead letter's id (the handle for {@link EventBus.redriveDeadLetter} / {@link EventBus.discardDeadLetter}). */
  id: string;
  topic: string;
  /** The consumer group that failed it; a redrive goes to this group only. */
  group: string;
  /** The consumer that gave up. */
  consumer: string;
  /** The event's position in the topic. */
  sourceId: string;
  reason: DeadLetterReason;
  /** The last error. `code` is the `PermanentError`/`AppError` code when there was one. */
  error: { name: string; message: string; code?: string };
  /** Deliveries to the group, the failed one included. */
  deliveries: number;
  /** ISO time it was dead-lettered. */
  failedAt: string;
  /** The original envelope, when the stored entry was a valid one. */
  envelope?: EventEnvelope;
  /** The stored envelope text as published. */
  raw: string;
}

/** A consumer group's state on one topic. */
export interface GroupInfo {
  name: string;
  /** Consumers known to the group (live or not yet cleaned up). */
  consumers: number;
  /**
   * Events delivered to a consumer and not yet acknowledged. Kafka keeps no such list (a group has
   * one committed offset per partition): always 0 there, and `lag` counts those events instead.
   */
  pending: number;
  /**
   * Events the group has still to handle, or `null` when the transport cannot tell: on Redis
   * Streams those not yet delivered; on Kafka those after the committed offsets (delivered or not).
   */
  lag: number | null;
  /** The position of the last event delivered to the group (Kafka: `partition:offset,…` of the committed offsets). */
  lastDeliveredId: string;
  /** Kafka only: the group's position and lag on each partition of the topic. */
  partitions?: PartitionLag[];
}

/** A consumer group's position on one partition of a topic (Kafka). */
export interface PartitionLag {
  partition: number;
  /** The next offset the group will read (its committed offset), or `null` when it has committed none. */
  committed: number | null;
  /** The partition's end (the offset the next published event gets). */
  end: number;
  /** `end - committed` (from the partition's start when nothing is committed). */
  lag: number;
}

/** The producers' port: publishes events (services normally publish through the outbox instead). */
export interface EventPublisher extends EnvelopePublisher {
  /**
   * Validates `data` against the contract, wraps it in an envelope (`createEnvelope`: current
   * correlation id, causation id and actor) and publishes it. Resolves with the envelope once the
   * transport has it durably.
   */
  publish<E extends EventDefinition>(event: E, data: z.input<E['data']>, options?: EnvelopeOptions): Promise<EventEnvelope<EventData<E>>>;
  /**
   * Publishes an envelope as is (the outbox relay's entry point). Throws a `PermanentError`
   * (`events.invalid_envelope`) when it is not a valid envelope.
   */
  publishEnvelope(envelope: EventEnvelope): Promise<void>;
}

/** The consumers' port. */
export interface EventSubscriber {
  /**
   * Starts consuming: creates the group on each topic if needed (see `startFrom`), then reads in the
   * background until `close()`. Returns at once; `subscription.ready` tells when it is reading.
   * Throws a `TypeError` for invalid options.
   */
  subscribe<E extends EventDefinition>(options: SubscribeOptions<E>): Subscription;
}

/** The operators' port: consumer groups, replay and dead letters. */
export interface EventBusAdmin {
  /** Creates a consumer group at `from` (default `'start'`); resolves `false` if it already existed (left unchanged). */
  createGroup(topic: string, group: string, from?: GroupPosition): Promise<boolean>;
  /**
   * Moves a group so that its next events are those after `to` (replay from the start or a time,
   * or skip to the end). Creates the group there if it does not exist. On Redis Streams events
   * already delivered and not acknowledged stay pending and are still redelivered; on Kafka the
   * group must have no live member (stop its consumers first), as Kafka itself requires.
   */
  resetGroup(topic: string, group: string, to: GroupPosition): Promise<void>;
  /** Deletes a consumer group and its position (e.g. the old group after a rebuild swap). Resolves `false` if there was none. */
  deleteGroup(topic: string, group: string): Promise<boolean>;
  /** The consumer groups of a topic. */
  groups(topic: string): Promise<GroupInfo[]>;
  /** The topic's dead letters, oldest first. */
  deadLetters(topic: string, options?: { /** Default: 100. */ limit?: number }): Promise<DeadLetter[]>;
  /**
   * Delivers a dead letter again, to the group that failed it only (other groups skip it), with a
   * fresh delivery count, and removes it from the dead letters. Resolves `false` if there is no such dead letter.
   */
  redriveDeadLetter(topic: string, id: string): Promise<boolean>;
  /** Deletes a dead letter for good. Resolves `false` if there is no such dead letter. */
  discardDeadLetter(topic: string, id: string): Promise<boolean>;
}

/**
 * An event bus adapter (Redis Streams by default, Kafka with `EVENT_BUS=kafka`): the three ports
 * plus its lifecycle. Services receive the port they use ({@link EventPublisher},
 * {@link EventSubscriber}, {@link EventBusAdmin}), never an adapter; the process's wiring
 * (`startRuntime`) picks the adapter.
 */
export interface EventBus extends EventPublisher, EventSubscriber, EventBusAdmin {
  /** Resolves when the transport answers; rejects (within a few seconds) while it is unreachable. The readiness check `events`. */
  ping(): Promise<void>;
  /**
   * Calls `listener` each time the transport takes events again after it was away (the outbox relay
   * then retries its waiting rows at once instead of after their backoff). Returns the function that
   * removes it.
   */
  onRecovered(listener: () => void): () => void;
  /** Closes every subscription (see {@link Subscription.close}), then the bus's own connections. */
  close(): Promise<void>;
}
