/** A broker the Kafka tests can use. */
export interface KafkaTestBrokers {
  /** Bootstrap brokers, `host:port`. */
  brokers: string[];
  /**
   * A consumer session timeout the broker accepts, short so that a killed consumer's partitions
   * move soon: 3,000 ms on the run's own broker (its `group.min.session.timeout.ms` is lowered to
   * 1 s); `KAFKA_TEST_SESSION_TIMEOUT_MS` (default 6,000, Kafka's own minimum) with `KAFKA_TEST_BROKERS`.
   */
  sessionTimeoutMs: number;
}

/** What `kafka-test-broker-setup.ts` provides to the tests of a project (`inject('kafkaTestBroker')`). */
export interface KafkaTestBrokerProvided {
  /** From `KAFKA_TEST_BROKERS`: brokers to use as they are. */
  external?: KafkaTestBrokers;
  /** Otherwise: the run's broker service; a request starts the shared broker (once) and answers its address. */
  serviceUrl?: string;
}

/** The broker service's answer. */
export type KafkaBrokerServiceAnswer = { ready: KafkaTestBrokers } | { toolingMissing: string } | { error: string };

/** What a Kafka test file gets from {@link kafkaTestBroker}. */
export type KafkaTestBroker =
  /** Brokers to connect to. */
  | ({ status: 'ready' } & KafkaTestBrokers)
  /** Java or Maven is missing on this machine (and `CI` is not `true`): skip, printing `reason`. */
  | { status: 'skip'; reason: string }
  /** The broker is needed and did not start (under `CI=true` a missing tool is this too): fail with `reason`. */
  | { status: 'failed'; reason: string };

/** The brokers named by `KAFKA_TEST_BROKERS` (comma-separated `host:port`), if set. */
export function externalKafkaTestBrokers(env: NodeJS.ProcessEnv = process.env): KafkaTestBrokers | undefined {
  const brokers = env.KAFKA_TEST_BROKERS?.split(',').map((broker) => broker.trim()).filter(Boolean) ?? [];
  if (brokers.length === 0) return undefined;
  return { brokers, sessionTimeoutMs: Number(env.KAFKA_TEST_SESSION_TIMEOUT_MS ?? 6_000) };
}

/**
 * The Kafka broker of this test run: the brokers of `KAFKA_TEST_BROKERS`, or the local broker the
 * global setup starts on the first call of the run (about 5 s; later calls answer at once). Call it
 * at the top of a Kafka test file with what the global setup provided, and skip or fail from its
 * status:
 *
 * ```ts
 * const kafka = await kafkaTestBroker(inject('kafkaTestBroker'));
 * describe.skipIf(kafka.status === 'skip')(`… ${kafkaSkipNote(kafka)}`, () => {
 *   beforeAll(() => { if (kafka.status === 'failed') throw new Error(kafka.reason); });
 * });
 * ```
 */
export async function kafkaTestBroker(provided: KafkaTestBrokerProvided | undefined): Promise<KafkaTestBroker> {
  const external = provided?.external ?? (provided?.serviceUrl ? undefined : externalKafkaTestBrokers());
  if (external) return { status: 'ready', ...external };
  if (!provided?.serviceUrl) {
    return {
      status: 'failed',
      reason: 'No Kafka broker for this test project: add common/src/testing/kafka-test-broker-setup.ts to its globalSetup in vitest.config.ts, or set KAFKA_TEST_BROKERS.',
    };
  }
  let answer: KafkaBrokerServiceAnswer;
  try {
    const response = await fetch(provided.serviceUrl);
    answer = (await response.json()) as KafkaBrokerServiceAnswer;
  } catch (error) {
    return { status: 'failed', reason: `The Kafka test broker service did not answer: ${error instanceof Error ? error.message : String(error)}` };
  }
  if ('ready' in answer) return { status: 'ready', ...answer.ready };
  if ('toolingMissing' in answer) {
    const reason = `${answer.toolingMissing} (Tests: KAFKA_TEST_BROKERS points them at an existing broker.)`;
    return process.env.CI === 'true' ? { status: 'failed', reason } : { status: 'skip', reason };
  }
  return { status: 'failed', reason: `The Kafka test broker did not start: ${answer.error}` };
}

/** For a test title: `(skipped: <reason>)` when `kafka` says skip, else an empty string. */
export function kafkaSkipNote(kafka: KafkaTestBroker): string {
  return kafka.status === 'skip' ? `(skipped: ${kafka.reason})` : '';
}
