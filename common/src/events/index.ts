/**
 * `@civildiy/common/events`: event contracts (`defineEvent`, `createEnvelope`), the {@link EventBus}
 * port services program against, and its Redis Streams adapter.
 *
 * Redis Streams layout (prefix default `civildiy:`):
 * - `<prefix>events:<topic>`: one stream per topic; each entry has the fields `type`, `version`
 *   and `envelope` (the JSON envelope), plus `group` when it is a dead letter redriven to one group.
 *   Trimmed by time (`retentionMs`, default 7 days).
 * - one consumer group per subscribing service; new groups start at the oldest retained event
 *   unless `startFrom: 'new'`.
 * - `<prefix>events:<topic>:dead`: the topic's dead letters (fields `envelope`, `type`, `version`,
 *   `group`, `consumer`, `sourceId`, `reason`, `error` (JSON), `deliveries`, `failedAt`), never trimmed.
 */
export * from './define.ts';
export type {
  DeadLetter,
  DeadLetterReason,
  EnvelopeOf,
  EventBus,
  EventBusAdmin,
  EventHandler,
  EventHandlerContext,
  GroupInfo,
  GroupPosition,
  PartitionLag,
  EventPublisher,
  EventSubscriber,
  SubscribeOptions,
  Subscription,
} from './event-bus.ts';
export { isEvent } from './is-event.ts';
export { eventMetrics, type ConsumeOutcome, type EventMetrics, type GroupStats, type GroupStatsSource } from './event-metrics.ts';
export { RedisStreamsEventBus, type RedisStreamsEventBusOptions } from './redis-streams-event-bus.ts';
