import { inject } from 'vitest';
import { kafkaSkipNote, kafkaTestBroker } from '@civildiy/common/testing';

/** Kafka's own lower bound, which `KAFKA_SESSION_TIMEOUT_MS` keeps to (the test broker would allow less). */
const MIN_SESSION_TIMEOUT_MS = 6_000;

/** An event bus transport a flow runs on, with what `startSystem` needs for it. */
export interface EventBusUnderTest {
  name: 'redis' | 'kafka';
  /** For a `describe` title: `Redis Streams`, `Kafka`, or `Kafka (skipped: <reason>)`. */
  title: string;
  /** Set when the transport cannot run on this machine (no Java, not CI): its tests are skipped with this reason. */
  skipReason?: string;
  /**
   * The environment of every process of a system on this transport (`startSystem({ env })`). Throws
   * when the transport is needed and did not start (e.g. under CI=true without Java): call it in a
   * `beforeAll`, so the suite fails with the reason.
   */
  env(): Record<string, string>;
}

/**
 * The transports every flow runs on: Redis Streams (the default) and Kafka on the run's shared test
 * broker (`KAFKA_TEST_BROKERS`, or a local one the global setup starts on the first call). Loop over
 * them with `describe.skipIf(bus.skipReason !== undefined)`; `vitest -t 'on Kafka'` runs one.
 */
export async function eventBuses(): Promise<EventBusUnderTest[]> {
  const kafka = await kafkaTestBroker(inject('kafkaTestBroker'));
  return [
    { name: 'redis', title: 'Redis Streams', env: () => ({ EVENT_BUS: 'redis' }) },
    {
      name: 'kafka',
      title: `Kafka ${kafkaSkipNote(kafka)}`.trim(),
      ...(kafka.status === 'skip' ? { skipReason: kafka.reason } : {}),
      env() {
        if (kafka.status !== 'ready') throw new Error(kafka.reason);
        return {
          EVENT_BUS: 'kafka',
          KAFKA_BROKERS: kafka.brokers.join(','),
          KAFKA_SESSION_TIMEOUT_MS: String(Math.max(MIN_SESSION_TIMEOUT_MS, kafka.sessionTimeoutMs)),
        };
      },
    },
  ];
}
