import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vitest/config';

/** One vitest project per workspace, so `npm test -w <service>` runs that service's tests alone. */
const workspaces = [
  'common',
  'mock-providers',
  'auth-service',
  'profile-service',
  'posts-service',
  'feed-service',
  'search-service',
  'order-service',
  'notification-service',
  'worker',
  'gateway',
  'e2e',
];

/**
 * The projects with Kafka tests share one broker per run (`KAFKA_TEST_BROKERS`, or a local one
 * started when a Kafka test file first asks for it).
 */
const kafkaProjects = new Set(['common', 'feed-service', 'e2e']);
const kafkaTestBrokerSetup = fileURLToPath(new URL('./common/src/testing/kafka-test-broker-setup.ts', import.meta.url));

export default defineConfig({
  test: {
    projects: workspaces.map((name) => ({
      test: {
        name,
        root: `./${name}`,
        include: ['test/**/*.test.ts'],
        testTimeout: name === 'e2e' ? 120_000 : 30_000,
        hookTimeout: name === 'e2e' ? 180_000 : 60_000,
        setupFiles: [],
        globalSetup: kafkaProjects.has(name) ? [kafkaTestBrokerSetup] : [],
      },
    })),
  },
});
