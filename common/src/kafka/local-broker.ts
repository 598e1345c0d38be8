import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { once } from 'node:events';
import { existsSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { Admin } from '@platformatic/kafka';
import { fetchMavenClasspath } from '../processes/maven-classpath.ts';
import { keepLastLines } from '../processes/last-lines.ts';
import { portIsFree } from '../processes/port-is-free.ts';

const run = promisify(execFile);

/** The Maven project naming the broker's pinned artifacts. */
export const KAFKA_BROKER_POM = fileURLToPath(new URL('../../kafka-broker/pom.xml', import.meta.url));

/** Java or Maven is missing: the message says what to install. */
export class KafkaToolingMissingError extends Error {
  override readonly name = 'KafkaToolingMissingError';
}

/** Options of {@link LocalKafkaBroker.start}. */
export interface LocalKafkaOptions {
  /** Where the broker keeps its classpath (`<dataDir>/kafka/lib`) and its log (`<dataDir>/kafka/data`). */
  dataDir: string;
  /** The client listener, on 127.0.0.1. Default 9092. */
  port?: number;
  /** The controller listener (KRaft), on 127.0.0.1. Default 9093. */
  controllerPort?: number;
  /** The JVM's heap, in MB. Default 384. */
  heapMb?: number;
  /** Partitions of topics created without a count. Default 3. */
  partitions?: number;
  /** How long to wait for the broker to answer a client, in ms. Default 60,000. */
  readyTimeoutMs?: number;
  /** Gets each line the broker writes (it logs warnings and errors only). Default: kept for error messages only. */
  onOutput?: (line: string) => void;
  /**
   * Broker settings written after (and so overriding) the defaults, e.g.
   * `{ 'group.min.session.timeout.ms': '1000' }` for tests that wait for a killed consumer's
   * session to expire. Default: none.
   */
  config?: Record<string, string>;
}

/**
 * Copies the broker's runtime classpath from Maven Central into `<dataDir>/kafka/lib`, once per
 * version of the POM (a hash of it is kept next to the jars), and returns the folder. Maven's own
 * cache (`~/.m2`) makes a second copy after `rm -rf .data` quick too.
 * @throws KafkaToolingMissingError when Java 17+ or Maven is not installed.
 */
export function fetchKafkaBroker(dataDir: string): Promise<string> {
  return fetchMavenClasspath({
    pom: KAFKA_BROKER_POM,
    lib: path.resolve(dataDir, 'kafka', 'lib'),
    what: 'the Kafka broker',
    missing: (tool) =>
      new KafkaToolingMissingError(
        tool === 'java'
          ? 'Kafka needs Java 17 or newer to run its broker, and none was found (java -version failed). Install one (Debian: apt-get install openjdk-17-jre-headless), set KAFKA_BROKERS to an existing cluster, or use EVENT_BUS=redis.'
          : 'The Kafka broker is fetched from Maven Central with Maven, which was not found (mvn -v failed). Install it (Debian: apt-get install maven), set KAFKA_BROKERS to an existing cluster, or use EVENT_BUS=redis.',
      ),
  });
}

/** The broker's configuration: one node that is broker and controller, replication factor 1 everywhere. */
function serverProperties(options: { port: number; controllerPort: number; logDir: string; partitions: number; config: Record<string, string> }): string {
  return [
    'process.roles=broker,controller',
    'node.id=1',
    `listeners=PLAINTEXT://127.0.0.1:${options.port},CONTROLLER://127.0.0.1:${options.controllerPort}`,
    `advertised.listeners=PLAINTEXT://127.0.0.1:${options.port}`,
    'controller.listener.names=CONTROLLER',
    'listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT',
    `controller.quorum.bootstrap.servers=127.0.0.1:${options.controllerPort}`,
    `log.dirs=${options.logDir}`,
    `num.partitions=${options.partitions}`,
    'offsets.topic.replication.factor=1',
    'transaction.state.log.replication.factor=1',
    'transaction.state.log.min.isr=1',
    'share.coordinator.state.topic.replication.factor=1',
    'share.coordinator.state.topic.min.isr=1',
    // Topics come from the contracts, with their retention: a typo must not create one.
    'auto.create.topics.enable=false',
    'group.initial.rebalance.delay.ms=0',
    // Later lines win: the caller's overrides.
    ...Object.entries(options.config).map(([name, value]) => `${name}=${value}`),
    '',
  ].join('\n');
}

/**
 * A single-node Apache Kafka broker (KRaft mode, Java 17+) for the local stack and the tests: the
 * classpath fetched from Maven Central ({@link fetchKafkaBroker}), storage formatted once under
 * `<dataDir>/kafka/data` (so topics and offsets survive a restart), listening on 127.0.0.1.
 */
export class LocalKafkaBroker {
  /** Resolves when the JVM has exited (stopped, killed or crashed). */
  readonly exited: Promise<void>;
  private readonly output: string[];

  private constructor(
    private readonly child: ChildProcess,
    /** `127.0.0.1:<port>`, for `KAFKA_BROKERS`. */
    readonly bootstrap: string,
    onOutput: ((line: string) => void) | undefined,
  ) {
    this.output = keepLastLines(child, onOutput);
    this.exited = once(child, 'exit').then(() => undefined);
  }

  /**
   * Fetches (when needed), formats (the first time) and starts the broker, and resolves once it
   * answers a client (a metadata request), or rejects with its output.
   */
  static async start(options: LocalKafkaOptions): Promise<LocalKafkaBroker> {
    const lib = await fetchKafkaBroker(options.dataDir);
    const port = options.port ?? 9092;
    const controllerPort = options.controllerPort ?? 9093;
    const home = path.resolve(options.dataDir, 'kafka');
    const logDir = path.join(home, 'data');
    const config = path.join(home, 'server.properties');
    await writeFile(config, serverProperties({ port, controllerPort, logDir, partitions: options.partitions ?? 3, config: options.config ?? {} }));
    const classpath = `${lib}${path.sep}*`;
    const jvm = [`-Xmx${options.heapMb ?? 384}m`, `-Xms${Math.min(64, options.heapMb ?? 384)}m`, '-XX:+UseSerialGC', '-Dorg.slf4j.simpleLogger.defaultLogLevel=warn'];
    // Formatted once: a restart keeps topics, offsets and consumer groups.
    if (!existsSync(path.join(logDir, 'meta.properties'))) {
      await run('java', [...jvm, '-cp', classpath, 'kafka.tools.StorageTool', 'format', '--standalone', '--ignore-formatted', '-t', clusterId(), '-c', config], { timeout: 120_000 });
    }
    // A broker already on the port would answer the readiness check in this one's place.
    for (const busy of [port, controllerPort]) {
      if (!(await portIsFree(busy))) {
        throw new Error(`Port ${busy} on 127.0.0.1 is in use (another Kafka broker?): stop it, or move this one with KAFKA_PORT / KAFKA_CONTROLLER_PORT`);
      }
    }
    // Its own process group: a Ctrl-C in the terminal reaches the launcher, which stops the broker
    // last, after the services that use it.
    const child = spawn('java', [...jvm, '-cp', classpath, 'kafka.Kafka', config], { stdio: ['ignore', 'pipe', 'pipe'], detached: true });
    const broker = new LocalKafkaBroker(child, `127.0.0.1:${port}`, options.onOutput);
    try {
      await broker.waitReady(options.readyTimeoutMs ?? 60_000);
    } catch (error) {
      await broker.stop();
      throw error;
    }
    return broker;
  }

  /** The process id of the JVM. */
  get pid(): number | undefined {
    return this.child.pid;
  }

  /** Stops the broker (SIGTERM: a controlled shutdown), SIGKILL after `graceMs` (default 20 s). Safe to call twice. */
  async stop(graceMs = 20_000): Promise<void> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return;
    this.child.kill('SIGTERM');
    const timer = setTimeout(() => this.child.kill('SIGKILL'), graceMs);
    try {
      await this.exited;
    } finally {
      clearTimeout(timer);
    }
  }

  /** Kills the broker at once (SIGKILL), as a crash would. */
  async kill(): Promise<void> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return;
    this.child.kill('SIGKILL');
    await this.exited;
  }

  private async waitReady(timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    let ended = false;
    void this.exited.then(() => (ended = true));
    while (!ended && Date.now() < deadline) {
      const admin = new Admin({ clientId: 'civildiy-local-broker-check', bootstrapBrokers: [this.bootstrap], timeout: 2_000, retries: 0 });
      try {
        await admin.listTopics();
        return;
      } catch {
        await new Promise((resolve) => setTimeout(resolve, 250));
      } finally {
        await admin.close().catch(() => undefined);
      }
    }
    throw new Error(`The Kafka broker did not ${ended ? 'stay up' : `answer within ${timeoutMs} ms`}. Its last output:\n${this.output.join('\n')}`);
  }
}

/** A KRaft cluster id: 16 random bytes, base64url (what `kafka-storage random-uuid` prints). */
function clusterId(): string {
  return Buffer.from(randomUUID().replaceAll('-', ''), 'hex').toString('base64url');
}
