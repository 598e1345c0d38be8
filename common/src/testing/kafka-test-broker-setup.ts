/**
 * The vitest `globalSetup` of the projects with Kafka tests (wired in the root `vitest.config.ts`):
 * ONE local Kafka broker for the whole run, started only when a Kafka test file first asks for it,
 * so a run without Kafka tests pays nothing.
 *
 * - `KAFKA_TEST_BROKERS` set (comma-separated `host:port`): those brokers are used, nothing is started.
 * - Otherwise a small HTTP endpoint in the vitest process starts a {@link LocalKafkaBroker} on free
 *   ports under `.data/test-kafka-<pid>` on its first request and answers every request with its
 *   address (or why it could not start); teardown stops the broker and deletes that folder.
 *
 * Test files read what this provides with `inject('kafkaTestBroker')` and pass it to
 * {@link kafkaTestBroker}.
 */
import { existsSync } from 'node:fs';
import { readdir, rm } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import path from 'node:path';
import type { TestProject } from 'vitest/node';
import { KafkaToolingMissingError, type LocalKafkaBroker } from '../kafka/local-broker.ts';
import { externalKafkaTestBrokers, type KafkaBrokerServiceAnswer, type KafkaTestBrokerProvided } from './kafka-test-broker.ts';
import { repositoryRoot } from './mock-providers.ts';
import { startTestKafkaBroker } from './private-kafka-broker.ts';
import { freePort } from './processes.ts';

declare module 'vitest' {
  export interface ProvidedContext {
    /** Set by `common/src/testing/kafka-test-broker-setup.ts`; read it with `kafkaTestBroker(inject('kafkaTestBroker'))`. */
    kafkaTestBroker: KafkaTestBrokerProvided;
  }
}

const dataRoot = path.join(repositoryRoot, '.data');

/** The session timeout tests use on this broker (it allows sessions from 1 s; heartbeats every second). */
const TEST_SESSION_TIMEOUT_MS = 3_000;

/** The broker service of this vitest process, shared by every project that uses this setup. */
interface BrokerService {
  users: number;
  server: Server;
  url: string;
  broker?: Promise<LocalKafkaBroker>;
  dataDir: string;
}

const serviceKey = Symbol.for('civildiy.kafkaTestBrokerService');
type Holder = typeof globalThis & { [serviceKey]?: Promise<BrokerService> };

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const external = externalKafkaTestBrokers();
  if (external) {
    project.provide('kafkaTestBroker', { external });
    return async () => {};
  }
  const holder = globalThis as Holder;
  holder[serviceKey] ??= startService();
  const service = await holder[serviceKey];
  service.users++;
  project.provide('kafkaTestBroker', { serviceUrl: service.url });
  return async () => {
    if (--service.users > 0) return;
    delete holder[serviceKey];
    await new Promise((resolve) => service.server.close(resolve));
    const broker = await service.broker?.catch(() => undefined);
    await broker?.stop();
    await rm(service.dataDir, { recursive: true, force: true });
  };
}

async function startService(): Promise<BrokerService> {
  await removeStaleRuns();
  const server = createServer((request, response) => {
    void answer().then((body) => {
      response.writeHead(200, { 'content-type': 'application/json' });
      response.end(JSON.stringify(body));
    });
  });
  server.listen(0, '127.0.0.1');
  await new Promise((resolve) => server.once('listening', resolve));
  const address = server.address();
  if (!address || typeof address === 'string') throw new Error('the Kafka test broker service has no port');
  const service: BrokerService = { users: 0, server, url: `http://127.0.0.1:${address.port}/`, dataDir: path.join(dataRoot, `test-kafka-${process.pid}`) };

  async function answer(): Promise<KafkaBrokerServiceAnswer> {
    service.broker ??= startBroker(service.dataDir);
    try {
      return { ready: { brokers: [(await service.broker).bootstrap], sessionTimeoutMs: TEST_SESSION_TIMEOUT_MS } };
    } catch (error) {
      if (error instanceof KafkaToolingMissingError) return { toolingMissing: error.message };
      return { error: error instanceof Error ? error.message : String(error) };
    }
  }
  return service;
}

async function startBroker(dataDir: string): Promise<LocalKafkaBroker> {
  const started = Date.now();
  // Throws KafkaToolingMissingError when Java or Maven is missing.
  const broker = await startTestKafkaBroker({ dataDir, port: await freePort(), controllerPort: await freePort() });
  console.error(`Kafka test broker ready at ${broker.bootstrap} in ${Date.now() - started} ms (data in ${dataDir})`);
  return broker;
}

/** Deletes the folders of earlier runs whose vitest process is gone (killed before its teardown). */
async function removeStaleRuns(): Promise<void> {
  const names = existsSync(dataRoot) ? await readdir(dataRoot) : [];
  for (const name of names) {
    const pid = /^test-kafka-(\d+)$/.exec(name)?.[1];
    if (pid && Number(pid) !== process.pid && !isAlive(Number(pid))) await rm(path.join(dataRoot, name), { recursive: true, force: true });
  }
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}
