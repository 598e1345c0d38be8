import { fileURLToPath } from 'node:url';
import { defaultServerConditions } from 'vite';
import { defineConfig } from 'vitest/config';

/**
 * Tests run the TypeScript sources: `@civildiy/common` and the services' own exports resolve to
 * `src/*.ts` under this condition (the compiled `dist/` is the default, for `npm start` and the images).
 */
export const SOURCE_CONDITION = 'civildiy-source';

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
  'dashboard',
  'dashboard/web',
  'e2e',
];

/**
 * The projects with Kafka tests share one broker per run (`KAFKA_TEST_BROKERS`, or a local one
 * started when a Kafka test file first asks for it).
 */
const kafkaProjects = new Set(['common', 'feed-service', 'dashboard', 'e2e']);
const kafkaTestBrokerSetup = fileURLToPath(new URL('./common/src/testing/kafka-test-broker-setup.ts', import.meta.url));
/** The projects whose tests run compiled code (`npm start`'s launcher, a built service) build it first. */
const buildSetup = fileURLToPath(new URL('./common/src/testing/build-setup.ts', import.meta.url));

export default defineConfig({
  test: {
    projects: workspaces.map((name) => ({
      ssr: { resolve: { conditions: [SOURCE_CONDITION, ...defaultServerConditions], externalConditions: [SOURCE_CONDITION] } },
      test: {
        name,
        root: `./${name}`,
        include: ['test/**/*.test.ts'],
        testTimeout: name === 'e2e' ? 120_000 : 30_000,
        hookTimeout: name === 'e2e' ? 180_000 : 60_000,
        setupFiles: [],
        globalSetup: [...(name === 'e2e' ? [buildSetup] : []), ...(kafkaProjects.has(name) ? [kafkaTestBrokerSetup] : [])],
      },
    })),
  },
});
