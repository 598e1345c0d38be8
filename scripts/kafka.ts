/**
 * `npm run kafka`: runs the local single-node Kafka broker in the foreground (fetched from Maven
 * Central on first use, data under DATA_DIR/kafka) until Ctrl-C. KAFKA_PORT (9092) and
 * KAFKA_CONTROLLER_PORT (9093) move its listeners.
 */
import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadConfigOrExit } from '@civildiy/common';
import { KafkaToolingMissingError, LocalKafkaBroker } from '@civildiy/common/kafka';
import { launcherEnv } from './launcher/launcher-env.ts';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
if (existsSync(path.join(root, '.env'))) process.loadEnvFile(path.join(root, '.env'));
const dataDir = path.resolve(root, process.env.DATA_DIR ?? '.data');
const { KAFKA_PORT: port, KAFKA_CONTROLLER_PORT: controllerPort } = loadConfigOrExit(launcherEnv);

let broker: LocalKafkaBroker;
try {
  console.error(`Starting the Kafka broker (data in ${path.join(dataDir, 'kafka')}; the first start fetches it from Maven Central)…`);
  broker = await LocalKafkaBroker.start({ dataDir, port, controllerPort, onOutput: (line) => console.error(`[kafka] ${line}`) });
} catch (error) {
  console.error(error instanceof KafkaToolingMissingError ? error.message : `The Kafka broker did not start: ${error instanceof Error ? error.message : String(error)}`);
  process.exit(1);
}
console.error(`Kafka is ready at ${broker.bootstrap} (KAFKA_BROKERS=${broker.bootstrap}). Stop: Ctrl-C.`);
let stopping = false;
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.on(signal, () => {
    if (stopping) return;
    stopping = true;
    console.error('Stopping the Kafka broker…');
    void broker.stop().then(() => process.exit(0));
  });
}
