/**
 * `npm start`: runs the whole system on this machine (or `npm start -- <service> …`: those only),
 * each service as its own process with prefixed logs, embedded databases under DATA_DIR and Redis
 * from REDIS_BROKER_URL. Ports come from each service's port variable (`.env` or the environment).
 * Events run on Redis Streams, or with EVENT_BUS=kafka on KAFKA_BROKERS; when that is unset, the
 * launcher starts a local Kafka broker first (KAFKA_PORT, data under DATA_DIR/kafka) and stops it
 * last, after every service.
 *
 * It supervises: a service that exits unexpectedly is restarted with backoff, and given up on (the
 * others keep running) when it cannot start or crashes in a loop; `launcher/restart-policy.ts` has
 * the rule. Ctrl-C, SIGTERM or SIGHUP stops everything: SIGTERM to every service, SIGKILL after
 * {@link STOP_GRACE_MS}. Exit code 0 when every service ran until it was stopped and stopped in time,
 * 1 when one was given up on (or every one was, which also ends the launcher) or had to be killed,
 * or when Redis or the local Kafka broker cannot be had; 78 when a variable the launcher reads is invalid.
 */
import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { ConfigError } from '@civildiy/common';
import { KafkaToolingMissingError, LocalKafkaBroker } from '@civildiy/common/kafka';
import { pingRedis } from '@civildiy/common/redis';
import { SERVICES, type ServiceInfo } from '@civildiy/common/topology';
import { describeEventTransport, planEventTransport, type EventTransport } from './launcher/event-transport.ts';
import { colourOutput, linePrefix } from './launcher/prefixed-output.ts';
import { renderStatusTable, type StatusRow } from './launcher/status-table.ts';
import { SupervisedService } from './launcher/supervised-service.ts';

/** How long a service may take to stop after SIGTERM (services give their own shutdown 10 s by default). */
const STOP_GRACE_MS = 15_000;
/** The status table is printed once every service is ready or given up on, or after this long. */
const TABLE_AT_THE_LATEST_MS = 90_000;
/** Ctrl-C reaches the launcher up to three times (terminal, npm, tsx); a signal this long after the first is a second Ctrl-C. */
const REPEATED_SIGNAL_MS = 2_000;

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
if (existsSync(path.join(root, '.env'))) process.loadEnvFile(path.join(root, '.env'));

const only = process.argv.slice(2);
const unknown = only.filter((name) => !SERVICES.some((service) => service.name === name));
if (unknown.length > 0) {
  console.error(`Unknown service(s): ${unknown.join(', ')}. Choose from: ${SERVICES.map((service) => service.name).join(', ')}.`);
  process.exit(1);
}

const redisUrl = process.env.REDIS_BROKER_URL ?? 'redis://127.0.0.1:6379';
try {
  await pingRedis(redisUrl);
} catch (error) {
  console.error(`
Redis is not reachable at ${redisUrl} (${error instanceof Error ? error.message : String(error)}).
CivilDIY needs Redis 7 for its task queue, event streams and feeds. Start one, for example:
  redis-server --daemonize yes --port 6379            (Debian: apt-get install redis-server)
or point REDIS_BROKER_URL at yours (see .env.example), then run npm start again.`);
  process.exit(1);
}

let transport: EventTransport;
try {
  transport = planEventTransport(process.env);
} catch (error) {
  if (!(error instanceof ConfigError)) throw error;
  console.error(error.message);
  process.exit(78);
}

const selected = only.length > 0 ? SERVICES.filter((service) => only.includes(service.name)) : SERVICES;
const dataDir = path.resolve(root, process.env.DATA_DIR ?? '.data');

/** The service's ports: its port variable when set (then only that one), else the defaults. */
function portsOf(service: ServiceInfo): number[] {
  const configured = env[service.portVariable];
  return configured ? [Number(configured)] : service.ports;
}

const prefixWidth = Math.max('launcher'.length, ...selected.map((service) => service.name.length));
const launcherPrefix = linePrefix('launcher', 'launcher', prefixWidth);
const report = (line: string) => console.log(`${launcherPrefix} ${line}`);

report(`events run on ${describeEventTransport(transport)}`);
const broker = transport.kind === 'local kafka' ? await startLocalKafka(transport) : undefined;

const env: NodeJS.ProcessEnv = {
  ...process.env,
  DATA_DIR: dataDir,
  REDIS_BROKER_URL: redisUrl,
  ...(broker ? { KAFKA_BROKERS: broker.bootstrap } : {}),
  LOG_FORMAT: process.env.LOG_FORMAT ?? (colourOutput ? 'pretty' : 'json'),
  FORCE_COLOR: colourOutput ? '1' : '0',
};

/**
 * Starts the local Kafka broker, or exits 1 with one clear line when it cannot start (no Java or
 * Maven: the error says what to install). A signal while it starts stops it once it is up.
 */
async function startLocalKafka(local: Extract<EventTransport, { kind: 'local kafka' }>): Promise<LocalKafkaBroker> {
  report(`starting the Kafka broker (data in ${path.join(dataDir, 'kafka')}; the first start fetches it from Maven Central)…`);
  const kafkaPrefix = linePrefix('kafka', selected.length, prefixWidth);
  let interrupted: NodeJS.Signals | undefined;
  const onSignal = (signal: NodeJS.Signals) => {
    interrupted ??= signal;
    report(`${signal}: stopping once the Kafka broker has started`);
  };
  const signals = ['SIGINT', 'SIGTERM', 'SIGHUP'] as const;
  for (const signal of signals) process.on(signal, onSignal);
  let started: LocalKafkaBroker;
  try {
    started = await LocalKafkaBroker.start({
      dataDir,
      port: local.port,
      controllerPort: local.controllerPort,
      onOutput: (line) => console.log(`${kafkaPrefix} ${line}`),
    });
  } catch (error) {
    console.error(error instanceof KafkaToolingMissingError ? error.message : `The Kafka broker did not start: ${error instanceof Error ? error.message : String(error)}`);
    process.exit(1);
  } finally {
    for (const signal of signals) process.off(signal, onSignal);
  }
  if (interrupted) {
    await started.stop();
    report('the Kafka broker is stopped; no service was started');
    process.exit(0);
  }
  report(`the Kafka broker is ready at ${started.bootstrap} (pid ${started.pid})`);
  return started;
}

let stopping = false;
void broker?.exited.then(() => {
  // The services keep running (their outboxes hold what they write, their readiness says Kafka is
  // away); the operator has to know why.
  if (!stopping) console.error(`The Kafka broker (pid ${broker.pid}) exited on its own: events wait in the outboxes until a broker is back (npm run kafka, or restart npm start).`);
});
let whenEverySettled = () => {};
const supervised = selected.map(
  (service, index) =>
    new SupervisedService(
      {
        name: service.name,
        cwd: path.join(root, service.name),
        env,
        readyUrl: `http://127.0.0.1:${portsOf(service)[0]}/health/ready`,
        outputPrefix: linePrefix(service.name, index, prefixWidth),
      },
      report,
      onStateChange,
    ),
);

function statusRows(): StatusRow[] {
  return supervised.map((service, index) => {
    const info = selected[index]!;
    const urls = portsOf(info).map((port) => `http://127.0.0.1:${port}${info.docs ? '/docs' : '/metrics'}`);
    return { ...service.status(), urls };
  });
}

function onStateChange(): void {
  const states = supervised.map((service) => service.status().state);
  if (states.every((state) => state === 'ready' || state === 'gave up')) whenEverySettled();
  if (!stopping && states.every((state) => state === 'gave up')) {
    report('No service is left running.');
    void stopEverything();
  }
}

async function stopEverything(): Promise<never> {
  stopping = true;
  await Promise.all(supervised.map((service) => service.stop(STOP_GRACE_MS)));
  if (broker) {
    report('every service has stopped: stopping the Kafka broker');
    await broker.stop();
  }
  const rows = statusRows();
  const code = rows.some((row) => row.state === 'gave up' || row.state === 'killed') ? 1 : 0;
  console.log(`\nCivilDIY stopped (exit code ${code}):\n${renderStatusTable(rows)}`);
  process.exit(code);
}

let firstSignalAt = 0;
function onSignal(signal: NodeJS.Signals): void {
  if (!stopping) {
    firstSignalAt = Date.now();
    report(`${signal}: stopping every service (SIGTERM, then SIGKILL after ${STOP_GRACE_MS / 1000} s; Ctrl-C again to kill them now)`);
    void stopEverything();
  } else if (Date.now() - firstSignalAt > REPEATED_SIGNAL_MS) {
    report(`${signal} again: killing every service${broker ? ' and the Kafka broker' : ''} now`);
    for (const service of supervised) service.kill();
    void broker?.kill();
  }
}
process.on('SIGINT', onSignal);
process.on('SIGTERM', onSignal);
process.on('SIGHUP', onSignal);
// Services run in their own process groups: should the launcher itself fail, take them along.
process.once('exit', () => {
  for (const service of supervised) service.kill();
  void broker?.kill();
});

const everySettledOrLate = new Promise<void>((resolve) => {
  whenEverySettled = resolve;
  AbortSignal.timeout(TABLE_AT_THE_LATEST_MS).addEventListener('abort', () => resolve(), { once: true });
});
for (const service of supervised) service.start();
await everySettledOrLate;
if (!stopping) {
  const rows = statusRows();
  const gateway = selected.find((service) => service.name === 'gateway');
  const entry = gateway ? `The API: http://127.0.0.1:${portsOf(gateway)[0]} (every service behind the gateway; one /docs for all).\n` : '';
  console.log(
    `\nCivilDIY is ${rows.every((row) => row.state === 'ready') ? 'running' : 'partly running'} (data in ${dataDir}, Redis ${redisUrl}, events on ${describeEventTransport(transport)}):\n` +
      `${renderStatusTable(rows)}\n${entry}` +
      `Try it: see README.md "Walk-through". Check it: npm run validate. Stop: Ctrl-C.\n`,
  );
}
