import { execFileSync } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Admin, Consumer, Producer, stringDeserializers, stringSerializers } from '@platformatic/kafka';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LocalKafkaBroker } from '../src/kafka/index.ts';
import { freePort } from '../src/testing/index.ts';

function javaWorks(): boolean {
  try {
    execFileSync('java', ['-version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

/**
 * The local Kafka broker (`npm start` with EVENT_BUS=kafka, the Kafka test suites): fetched from
 * Maven Central, formatted once, started on free ports, answering clients, keeping its data across a
 * restart. Needs Java 17 and Maven: on a machine without Java it is skipped, with this reason; under
 * CI=true it must run (CI installs them).
 */
const haveJava = javaWorks();
const skip = !haveJava && process.env.CI !== 'true';

describe.skipIf(skip)('the local Kafka broker (skipped: no Java 17 on this machine, and not CI)', () => {
  let dataDir: string;
  let broker: LocalKafkaBroker | undefined;
  let port: number;
  let controllerPort: number;

  beforeAll(async () => {
    dataDir = await mkdtemp(path.join(tmpdir(), 'civildiy-kafka-'));
    [port, controllerPort] = [await freePort(), await freePort()];
    broker = await LocalKafkaBroker.start({ dataDir, port, controllerPort, heapMb: 256 });
  }, 300_000);

  afterAll(async () => {
    await broker?.stop();
    if (dataDir) await rm(dataDir, { recursive: true, force: true });
  }, 60_000);

  it('answers clients: a topic is created with its partitions and retention, and a message goes through', async () => {
    const admin = new Admin({ clientId: 'local-broker-test', bootstrapBrokers: [broker!.bootstrap] });
    try {
      await admin.createTopics({ topics: ['local-broker-test'], partitions: 3, replicas: 1, configs: [{ name: 'retention.ms', value: String(7 * 24 * 3600 * 1000) }] });
      expect(await admin.listTopics()).toContain('local-broker-test');
    } finally {
      await admin.close();
    }
    const producer = new Producer({ clientId: 'local-broker-test', bootstrapBrokers: [broker!.bootstrap], serializers: stringSerializers });
    await producer.send({ messages: [{ topic: 'local-broker-test', key: 'post-1', value: 'hello' }] });
    await producer.close();
    const consumer = new Consumer({ clientId: 'local-broker-test', groupId: 'local-broker-test', bootstrapBrokers: [broker!.bootstrap], deserializers: stringDeserializers });
    try {
      const stream = await consumer.consume({ topics: ['local-broker-test'], mode: 'earliest' });
      for await (const message of stream) {
        expect({ key: message.key, value: message.value }).toEqual({ key: 'post-1', value: 'hello' });
        break;
      }
      await stream.close();
    } finally {
      await consumer.close(true);
    }
  }, 120_000);

  it('keeps its topics across a restart on the same data folder, formatting only once', async () => {
    await broker!.stop();
    broker = await LocalKafkaBroker.start({ dataDir, port, controllerPort, heapMb: 256 });
    const admin = new Admin({ clientId: 'local-broker-test', bootstrapBrokers: [broker.bootstrap] });
    try {
      expect(await admin.listTopics()).toContain('local-broker-test');
    } finally {
      await admin.close();
    }
  }, 180_000);
});
