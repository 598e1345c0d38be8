import type { Registry } from 'prom-client';
import type { Logger } from '../logging/index.ts';

/** Options of `KafkaEventBus`. */
export interface KafkaEventBusOptions {
  /** Bootstrap brokers, `host:port` (`KAFKA_BROKERS`, comma-separated). */
  brokers: readonly string[];
  /** The client id the broker sees (logs, quotas). Default: `civildiy`. */
  clientId?: string;
  /**
   * Put before every topic and consumer group name (Kafka groups are cluster-wide, unlike Redis
   * Streams groups): `<prefix>posts-events`, group `<prefix>feed-service`. Default: none.
   */
  prefix?: string;
  /** Partitions of a topic the bus creates (`KAFKA_PARTITIONS`). An existing topic keeps its own. Default: 3. */
  partitions?: number;
  /** Replicas of a topic the bus creates (`KAFKA_REPLICATION_FACTOR`). Default: 1. */
  replicationFactor?: number;
  /** `retention.ms` of a topic the bus creates. Dead-letter topics are compacted and never expire. Default: 7 days. */
  retentionMs?: number;
  /** Deliveries to one group before a failing event is dead-lettered for that group. Default: 5. */
  maxDeliveries?: number;
  /**
   * Delay before a failed event is handled again: `retryBackoffMs · 2^(delivery-1)`, at most 30 s.
   * The event's partition does not advance meanwhile (other keys of it keep being handled, its
   * offset is not committed past it). Default: 1,000.
   */
  retryBackoffMs?: number;
  /** A consumer not heard of for this long loses its partitions to the group's other members. Default: 10,000 (the broker's minimum is 6,000). */
  sessionTimeoutMs?: number;
  /** Events fetched and not yet handled, per subscription, before it stops fetching. Default: 1,000. */
  maxBufferedEvents?: number;
  /** How long `Subscription.close()` waits for running handlers. Default: 10 s. */
  closeTimeoutMs?: number;
  /** How long a broker request may take before it fails (admin, consumer). Default: 5,000. */
  requestTimeoutMs?: number;
  /**
   * How long `publish`/`publishEnvelope` wait for the broker before rejecting. The idempotent
   * producer keeps the send going until the broker takes it; publishing the same envelope again
   * meanwhile (the relay's retry) shares that send instead of adding a copy. Default: 10,000.
   */
  publishTimeoutMs?: number;
  /** Default: a logger for service `event-bus`. */
  logger?: Logger;
  /** Where the metrics are registered. Default: prom-client's global registry. */
  registry?: Registry;
}
