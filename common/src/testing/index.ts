/** Test support shared by every workspace's tests: tokens signed like auth-service's, real service processes, the run's Kafka broker and private ones. */
export { createTestTokens, type TestTokenOptions, type TestTokens } from './tokens.ts';
export { freePort, runTypescriptCommand, startServiceProcess, TYPESCRIPT_NODE_ARGS, type CommandOutcome, type ServiceProcess, type StartServiceOptions } from './processes.ts';
export { REDIS_URL, removeRedisPrefix, uniquePrefix } from './redis.ts';
export { providerCall, repositoryRoot, startMockProviders, type MockProviders, type StartMockProvidersOptions } from './mock-providers.ts';
export {
  SLICE_SERVICES,
  SOCIAL_SERVICES,
  SYSTEM_SERVICES,
  grantRole,
  startSystem,
  type SliceService,
  type StartSystemOptions,
  type SystemService,
  type SystemUnderTest,
} from './system.ts';
export { newPostSnapshot } from './posts.ts';
export { httpCall, loginUser, registerUser, TEST_PASSWORD, type HttpCallOptions, type RegisteredUser } from './http.ts';
export { startPostgresCluster, type PostgresCluster } from './postgres-cluster.ts';
export { PrivateRedisServer } from './redis-server.ts';
export { FakeConsul, type FakeConsulCall, type FakeConsulOptions, type FakeConsulService } from './consul-fake.ts';
export {
  externalKafkaTestBrokers,
  kafkaSkipNote,
  kafkaTestBroker,
  type KafkaBrokerServiceAnswer,
  type KafkaTestBroker,
  type KafkaTestBrokerProvided,
  type KafkaTestBrokers,
} from './kafka-test-broker.ts';
export { removeKafkaPrefix } from './kafka-prefix.ts';
export { kafkaToolingMissing, PrivateKafkaBroker, startTestKafkaBroker, type TestKafkaBrokerOptions } from './private-kafka-broker.ts';
export { DATABASE_TARGETS, createTestDatabase, openTestDatabase, type DatabaseTarget, type TestDatabase } from './databases.ts';
export { fetchMongoTestServer, MongoTestServer, MongoToolingMissingError, mongoTestServerToolingMissing, type MongoTestServerOptions } from './mongo-test-server.ts';
