export { KAFKA_BROKER_POM, KafkaToolingMissingError, LocalKafkaBroker, fetchKafkaBroker, type LocalKafkaOptions } from './local-broker.ts';
