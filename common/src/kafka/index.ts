/**
 * `@civildiy/common/kafka`: the Kafka adapter of the event bus ({@link KafkaEventBus}) and the local
 * single-node KRaft broker fetched from Maven Central ({@link LocalKafkaBroker}).
 */
export { KafkaEventBus } from './kafka-event-bus.ts';
export type { KafkaEventBusOptions } from './kafka-event-bus-options.ts';
export { KAFKA_BROKER_POM, KafkaToolingMissingError, LocalKafkaBroker, fetchKafkaBroker, type LocalKafkaOptions } from './local-broker.ts';
