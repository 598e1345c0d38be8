/**
 * Which event bus transport `npm start` runs the system on: Redis Streams (nothing to start), a
 * Kafka cluster named by KAFKA_BROKERS (nothing to start either), or a local Kafka broker the
 * launcher starts before the services and stops after them.
 */
import { baseEnv, loadConfig } from '@civildiy/common';
import { launcherEnv } from './launcher-env.ts';

/** What the system's events run on. */
export type EventTransport =
  /** Redis Streams on REDIS_BROKER_URL (`EVENT_BUS=redis`, the default). */
  | { kind: 'redis' }
  /** `EVENT_BUS=kafka` with KAFKA_BROKERS set: that cluster, as it is. */
  | { kind: 'kafka'; brokers: string[] }
  /** `EVENT_BUS=kafka` without KAFKA_BROKERS: a broker the launcher runs on 127.0.0.1. */
  | { kind: 'local kafka'; port: number; controllerPort: number };

const transportEnv = baseEnv.pick({ EVENT_BUS: true, KAFKA_BROKERS: true }).extend(launcherEnv.shape);

/**
 * Decides the transport from the launcher's environment.
 * @throws ConfigError naming a bad EVENT_BUS, KAFKA_BROKERS, KAFKA_PORT or KAFKA_CONTROLLER_PORT.
 */
export function planEventTransport(env: NodeJS.ProcessEnv): EventTransport {
  const config = loadConfig(transportEnv, env);
  if (config.EVENT_BUS === 'redis') return { kind: 'redis' };
  // Set at all (an empty value counts as unset, as in loadConfig): the operator chose the cluster.
  if (env.KAFKA_BROKERS) return { kind: 'kafka', brokers: config.KAFKA_BROKERS };
  return { kind: 'local kafka', port: config.KAFKA_PORT, controllerPort: config.KAFKA_CONTROLLER_PORT };
}

/** The transport in a few words, for the launcher's lines: `Kafka at 127.0.0.1:9092 (a local broker)`. */
export function describeEventTransport(transport: EventTransport): string {
  switch (transport.kind) {
    case 'redis':
      return 'Redis Streams';
    case 'kafka':
      return `Kafka at ${transport.brokers.join(',')} (KAFKA_BROKERS)`;
    case 'local kafka':
      return `Kafka at 127.0.0.1:${transport.port} (a local broker)`;
  }
}
