import type { RuntimeEnv } from '../config/index.ts';
import type { EventBus } from '../events/event-bus.ts';
import { RedisStreamsEventBus } from '../events/redis-streams-event-bus.ts';
import type { Logger } from '../logging/index.ts';

/** The variables {@link createEventBus} reads (every service has them: they are part of `baseEnv`). */
export type EventBusEnv = Pick<
  RuntimeEnv,
  | 'EVENT_BUS'
  | 'REDIS_BROKER_URL'
  | 'REDIS_KEY_PREFIX'
  | 'EVENTS_CLAIM_IDLE_MS'
  | 'KAFKA_BROKERS'
  | 'KAFKA_PREFIX'
  | 'KAFKA_PARTITIONS'
  | 'KAFKA_REPLICATION_FACTOR'
  | 'KAFKA_SESSION_TIMEOUT_MS'
>;

/** Options of {@link createEventBus}. */
export interface CreateEventBusOptions {
  /** The process's name: the Kafka client id. */
  service: string;
  /** The bus's logger. */
  logger: Logger;
}

/**
 * The event bus adapter `EVENT_BUS` names: Redis Streams on `REDIS_BROKER_URL` (keys under
 * `REDIS_KEY_PREFIX:`) or Kafka on `KAFKA_BROKERS`. The caller owns it: `close()` it at shutdown.
 * `startRuntime` calls it for every service; a script that needs a bus of its own calls it too, so
 * it runs on either transport.
 *
 * The Kafka client is loaded only when Kafka is chosen: it costs a process ~30 MB of memory.
 */
export async function createEventBus(config: EventBusEnv, { service, logger }: CreateEventBusOptions): Promise<EventBus> {
  if (config.EVENT_BUS === 'kafka') {
    const { KafkaEventBus } = await import('../kafka/kafka-event-bus.ts');
    return new KafkaEventBus({
      brokers: config.KAFKA_BROKERS,
      clientId: service,
      prefix: config.KAFKA_PREFIX,
      partitions: config.KAFKA_PARTITIONS,
      replicationFactor: config.KAFKA_REPLICATION_FACTOR,
      sessionTimeoutMs: config.KAFKA_SESSION_TIMEOUT_MS,
      logger,
    });
  }
  return new RedisStreamsEventBus({
    connection: config.REDIS_BROKER_URL,
    prefix: `${config.REDIS_KEY_PREFIX}:`,
    logger,
    claimIdleMs: config.EVENTS_CLAIM_IDLE_MS,
  });
}

/** What {@link createEventBus} would use, in a few words for a log line: `kafka (brokers a:9092,b:9092)`. */
export function describeEventBus(config: EventBusEnv): string {
  return config.EVENT_BUS === 'kafka'
    ? `kafka (brokers ${config.KAFKA_BROKERS.join(',')}${config.KAFKA_PREFIX ? `, prefix ${config.KAFKA_PREFIX}` : ''})`
    : `redis (Redis Streams, keys under ${config.REDIS_KEY_PREFIX}:)`;
}
