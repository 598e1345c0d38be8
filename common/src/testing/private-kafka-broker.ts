import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, rm, symlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fetchKafkaBroker, KafkaToolingMissingError, LocalKafkaBroker } from '../kafka/local-broker.ts';
import { repositoryRoot } from './mock-providers.ts';
import { freePort } from './processes.ts';

/** The broker's jars, fetched once and shared by every test broker (each links them into its own folder). */
const sharedJars = path.join(repositoryRoot, '.data', 'test-kafka-jars');

/**
 * Broker settings for tests: consumer sessions may be as short as 1 s instead of Kafka's 6 s
 * minimum (a killed consumer's partitions move sooner), and the offsets topic, which the first
 * consumer group waits for, has 3 partitions instead of 50.
 */
const TEST_BROKER_CONFIG = {
  'group.min.session.timeout.ms': '1000',
  'offsets.topic.num.partitions': '3',
};

/**
 * Why this machine cannot run a test broker (Java 17+ or Maven missing, the message says which), or
 * undefined when it can. Fetches the broker's jars the first time, as the first start would.
 */
export async function kafkaToolingMissing(): Promise<string | undefined> {
  try {
    await fetchKafkaBroker(sharedJars);
    return undefined;
  } catch (error) {
    if (error instanceof KafkaToolingMissingError) return error.message;
    throw error;
  }
}

/** Where and how {@link startTestKafkaBroker} runs a broker. */
export interface TestKafkaBrokerOptions {
  /** The broker's folder: its jars are linked into `<dataDir>/kafka/lib`, its log is `<dataDir>/kafka/data`. */
  dataDir: string;
  /** The client listener on 127.0.0.1. */
  port: number;
  /** The controller listener on 127.0.0.1. */
  controllerPort: number;
}

/**
 * Starts a {@link LocalKafkaBroker} with the test settings (short sessions allowed, a small offsets
 * topic, 3 partitions, 384 MB of heap), its jars linked from the copy every test broker shares
 * (`.data/test-kafka-jars`, fetched with Maven the first time). A second start on the same folder and
 * ports is a restart: topics, offsets and groups are kept.
 * @throws KafkaToolingMissingError when Java or Maven is missing.
 */
export async function startTestKafkaBroker(options: TestKafkaBrokerOptions): Promise<LocalKafkaBroker> {
  const jars = await fetchKafkaBroker(sharedJars);
  await mkdir(path.join(options.dataDir, 'kafka'), { recursive: true });
  const lib = path.join(options.dataDir, 'kafka', 'lib');
  if (!existsSync(lib)) await symlink(jars, lib, 'dir');
  return LocalKafkaBroker.start({ ...options, heapMb: 384, partitions: 3, config: TEST_BROKER_CONFIG });
}

/**
 * A Kafka broker of a test's own, on free ports, with its data in a temporary folder: for tests
 * that stop, kill or restart the broker under a running system without disturbing the run's shared
 * test broker (`kafkaTestBroker`). Needs Java 17+ (and Maven the first time), as the shared one.
 */
export class PrivateKafkaBroker {
  private broker: LocalKafkaBroker | undefined;

  private constructor(private readonly options: TestKafkaBrokerOptions) {}

  /** Starts one and resolves once it answers clients. */
  static async start(): Promise<PrivateKafkaBroker> {
    const dataDir = await mkdtemp(path.join(tmpdir(), 'civildiy-kafka-'));
    const broker = new PrivateKafkaBroker({ dataDir, port: await freePort(), controllerPort: await freePort() });
    try {
      await broker.up();
    } catch (error) {
      await rm(dataDir, { recursive: true, force: true });
      throw error;
    }
    return broker;
  }

  /** `127.0.0.1:<port>`, for `KAFKA_BROKERS`; the same across restarts. */
  get bootstrap(): string {
    return `127.0.0.1:${this.options.port}`;
  }

  /** The JVM's process id while it runs. */
  get pid(): number | undefined {
    return this.broker?.pid;
  }

  /** Starts the broker (again: same folder and ports, so topics and committed offsets are back) and resolves once it answers clients. */
  async up(): Promise<void> {
    if (this.broker) throw new Error('the private Kafka broker is already running');
    this.broker = await startTestKafkaBroker(this.options);
  }

  /** Stops the broker as an operator would (SIGTERM: a controlled shutdown) and resolves once it has exited. */
  async stop(): Promise<void> {
    const broker = this.broker;
    this.broker = undefined;
    await broker?.stop();
  }

  /** Kills the broker as a crash would (SIGKILL) and resolves once it is gone. */
  async kill(): Promise<void> {
    const broker = this.broker;
    this.broker = undefined;
    await broker?.kill();
  }

  /** Kills the broker and deletes its data folder. */
  async remove(): Promise<void> {
    await this.kill();
    await rm(this.options.dataDir, { recursive: true, force: true });
  }
}
