/**
 * `npm start`: runs the whole system on this machine (or `npm start -- <service> …`: those only),
 * each service as its own process (its compiled `dist/main.js`: `npm start` builds first) with
 * prefixed logs, data under DATA_DIR and Redis from REDIS_BROKER_URL. Ports come from each service's
 * port variable (`.env` or the environment).
 *
 * Databases: a service whose *_DATABASE_URL is unset gets a database of its own on one local
 * Postgres server (LOCAL_POSTGRES_PORT, data under DATA_DIR/postgres; `launcher/local-databases.ts`),
 * or embedded PGlite with LOCAL_DATABASE=pglite and for search-service (pgvector). Events run on
 * Redis Streams, or with EVENT_BUS=kafka on KAFKA_BROKERS; when that is unset, on a local Kafka
 * broker (KAFKA_PORT, data under DATA_DIR/kafka). Such infrastructure starts before the services
 * and stops after every one of them; should the launcher die without stopping it, it stops too.
 *
 * It supervises: a service that exits unexpectedly is restarted with backoff, and given up on (the
 * others keep running) when it cannot start or crashes in a loop; `launcher/restart-policy.ts` has
 * the rule. Ctrl-C, SIGTERM or SIGHUP stops everything: SIGTERM to every service, SIGKILL after
 * {@link STOP_GRACE_MS}. Exit code 0 when every service ran until it was stopped and stopped in time,
 * 1 when one was given up on (or every one was, which also ends the launcher) or had to be killed,
 * or when Redis, the local Postgres server or the local Kafka broker cannot be had, or DATA_DIR holds
 * databases in the earlier PGlite layout that the server would hide (`npm run data:migrate`); 78 when a variable the launcher reads is invalid.
 */
import { existsSync } from 'node:fs';
import path from 'node:path';
import { ConfigError } from '@civildiy/common';
import type { LocalPostgres } from '@civildiy/common/db';
import type { LocalKafkaBroker } from '@civildiy/common/kafka';
import { pingRedis } from '@civildiy/common/redis';
import { SERVICES, type ServiceInfo } from '@civildiy/common/topology';
import { checkEmbeddingsVariables, planEmbeddingsProvider, RequiredModelMissingError, type EmbeddingsPlan } from './launcher/embeddings-provider.ts';
import { describeEventTransport, planEventTransport, type EventTransport } from './launcher/event-transport.ts';
import { dataInEarlierLayout, earlierLayoutMessage, planDatabases, type DatabasePlan } from './launcher/local-databases.ts';
import { colourOutput, linePrefix } from './launcher/prefixed-output.ts';
import { repositoryRoot } from './launcher/repository-root.ts';
import { renderStatusTable, type StatusRow } from './launcher/status-table.ts';
import { SupervisedService } from './launcher/supervised-service.ts';

/** How long a service may take to stop after SIGTERM (services give their own shutdown 10 s by default). */
const STOP_GRACE_MS = 15_000;
/** The status table is printed once every service is ready or given up on, or after this long. */
const TABLE_AT_THE_LATEST_MS = 90_000;
/** Ctrl-C reaches the launcher up to three times (terminal, npm, tsx); a signal this long after the first is a second Ctrl-C. */
const REPEATED_SIGNAL_MS = 2_000;

const root = repositoryRoot;
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

const selected = only.length > 0 ? SERVICES.filter((service) => only.includes(service.name)) : SERVICES;
let transport: EventTransport;
let databasePlan: DatabasePlan;
try {
  transport = planEventTransport(process.env);
  databasePlan = planDatabases(selected, process.env);
} catch (error) {
  if (!(error instanceof ConfigError)) throw error;
  console.error(error.message);
  process.exit(78);
}

const dataDir = path.resolve(root, process.env.DATA_DIR ?? '.data');

/** The service's ports: its port variable when set (then only that one), else the defaults. */
function portsOf(service: ServiceInfo): number[] {
  const configured = env[service.portVariable];
  return configured ? [Number(configured)] : service.ports;
}

const prefixWidth = Math.max('launcher'.length, ...selected.map((service) => service.name.length));
const launcherPrefix = linePrefix('launcher', 'launcher', prefixWidth);
const report = (line: string) => console.log(`${launcherPrefix} ${line}`);

const inEarlierLayout = dataInEarlierLayout(databasePlan, dataDir);
if (inEarlierLayout.length > 0) {
  console.error(earlierLayoutMessage(inEarlierLayout));
  process.exit(1);
}

/** Infrastructure started so far (stopped when a later piece fails to start). */
const running: { stop(): Promise<void> }[] = [];
report(`events run on ${describeEventTransport(transport)}`);
// The model is found, or fetched on a first start (seconds of Maven), while the infrastructure starts.
const modelFetch = new AbortController();
process.once('exit', () => modelFetch.abort());
const withEmbeddings = selected.some((service) => service.name === 'mock-providers');
if (withEmbeddings) {
  try {
    checkEmbeddingsVariables(process.env);
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error;
    console.error(error.message);
    process.exit(78);
  }
}
const planning = withEmbeddings ? planEmbeddings(modelFetch.signal) : undefined;
const broker = transport.kind === 'local kafka' ? await startLocalKafka(transport) : undefined;
const postgres = databasePlan.localPostgres.length > 0 ? await startLocalPostgres(databasePlan) : undefined;
const embeddings = planning ? await settleEmbeddingsPlan(planning) : undefined;

const env: NodeJS.ProcessEnv = {
  ...process.env,
  // The model's name and dimension for the worker and search-service when the model runs and neither is set.
  ...embeddings?.clientEnv,
  DATA_DIR: dataDir,
  REDIS_BROKER_URL: redisUrl,
  ...(broker ? { KAFKA_BROKERS: broker.bootstrap } : {}),
  LOG_FORMAT: process.env.LOG_FORMAT ?? (colourOutput ? 'pretty' : 'json'),
  FORCE_COLOR: colourOutput ? '1' : '0',
};

/**
 * Starts a piece of local infrastructure (the Kafka broker, the Postgres server), or exits 1 with
 * one clear line when it cannot start. A signal while it starts stops it once it is up (nothing
 * else has started yet).
 */
async function startInfrastructure<T extends { stop(): Promise<void> }>(what: string, start: () => Promise<T>, missingTooling: (error: unknown) => boolean): Promise<T> {
  let interrupted: NodeJS.Signals | undefined;
  const onSignal = (signal: NodeJS.Signals) => {
    interrupted ??= signal;
    report(`${signal}: stopping once ${what} has started`);
  };
  const signals = ['SIGINT', 'SIGTERM', 'SIGHUP'] as const;
  for (const signal of signals) process.on(signal, onSignal);
  let started: T;
  try {
    started = await start();
  } catch (error) {
    console.error(missingTooling(error) ? (error as Error).message : `${what} did not start: ${error instanceof Error ? error.message : String(error)}`);
    await Promise.all(running.map((other) => other.stop()));
    process.exit(1);
  } finally {
    for (const signal of signals) process.off(signal, onSignal);
  }
  if (interrupted) {
    await Promise.all([started, ...running].map((other) => other.stop()));
    report(`${what} is stopped; no service was started`);
    process.exit(0);
  }
  running.push(started);
  return started;
}

/** Starts the local Kafka broker (see {@link startInfrastructure}). */
async function startLocalKafka(local: Extract<EventTransport, { kind: 'local kafka' }>): Promise<LocalKafkaBroker> {
  report(`starting the Kafka broker (data in ${path.join(dataDir, 'kafka')}; the first start fetches it from Maven Central)…`);
  const kafkaPrefix = linePrefix('kafka', selected.length, prefixWidth);
  const { KafkaToolingMissingError, LocalKafkaBroker } = await import('@civildiy/common/kafka');
  const started = await startInfrastructure(
    'the Kafka broker',
    () => LocalKafkaBroker.start({ dataDir, port: local.port, controllerPort: local.controllerPort, onOutput: (line) => console.log(`${kafkaPrefix} ${line}`) }),
    (error) => error instanceof KafkaToolingMissingError,
  );
  report(`the Kafka broker is ready at ${started.bootstrap} (pid ${started.pid})`);
  return started;
}

/** Starts the local Postgres server and creates the planned databases (see {@link startInfrastructure}). */
async function startLocalPostgres(plan: DatabasePlan): Promise<{ server: LocalPostgres; urls: Map<string, { variable: string; url: string }> }> {
  report(`starting Postgres for ${plan.localPostgres.map(({ service }) => service).join(', ')} (data in ${path.join(dataDir, 'postgres')})…`);
  const postgresPrefix = linePrefix('postgres', selected.length + 1, prefixWidth);
  const { LocalPostgres, LocalPostgresUnavailableError } = await import('@civildiy/common/db');
  const server = await startInfrastructure(
    'the local Postgres server',
    () => LocalPostgres.start({ dataDir, port: plan.port, onOutput: (line) => console.log(`${postgresPrefix} ${line}`) }),
    (error) => error instanceof LocalPostgresUnavailableError,
  );
  const urls = new Map<string, { variable: string; url: string }>();
  for (const { service, database } of plan.localPostgres) urls.set(service, { variable: database.urlVariable, url: await server.database(database.name) });
  report(`Postgres is ready at 127.0.0.1:${server.port} (pid ${server.pid}), a database each for ${plan.localPostgres.map(({ database }) => database.name).join(', ')}`);
  return { server, urls };
}

/** The embeddings plan, or why the launcher has to stop (its message and exit code). */
type PlanOutcome = { plan: EmbeddingsPlan } | { message: string; exitCode: number };

/** Decides the embeddings provider (see `launcher/embeddings-provider.ts`); never rejects: 78 for a bad variable, 1 when EMBEDDINGS_PROVIDER=model has no model. */
async function planEmbeddings(signal: AbortSignal): Promise<PlanOutcome> {
  try {
    const plan = await planEmbeddingsProvider(process.env, dataDir, report, { signal });
    report(plan.description);
    return { plan };
  } catch (error) {
    if (error instanceof ConfigError) return { message: error.message, exitCode: 78 };
    const message = error instanceof RequiredModelMissingError ? error.message : `The embeddings model could not be prepared: ${error instanceof Error ? error.message : String(error)}`;
    return { message, exitCode: 1 };
  }
}

/**
 * Waits for the embeddings plan once the infrastructure is up. When the plan fails, or a signal
 * comes while it is being made, stops the infrastructure and exits (no service has started).
 */
async function settleEmbeddingsPlan(planning: Promise<PlanOutcome>): Promise<EmbeddingsPlan> {
  let interrupted: NodeJS.Signals | undefined;
  const onSignal = (signal: NodeJS.Signals) => {
    interrupted ??= signal;
    report(`${signal}: stopping the model's fetch`);
    modelFetch.abort();
  };
  const signals = ['SIGINT', 'SIGTERM', 'SIGHUP'] as const;
  for (const signal of signals) process.on(signal, onSignal);
  const outcome = await planning;
  for (const signal of signals) process.off(signal, onSignal);
  if (!interrupted && 'plan' in outcome) return outcome.plan;
  await Promise.all(running.map((other) => other.stop()));
  if (interrupted || 'plan' in outcome) {
    report('stopped; no service was started');
    process.exit(0);
  }
  console.error(outcome.message);
  process.exit(outcome.exitCode);
}

let stopping = false;
void broker?.exited.then(() => {
  // The services keep running (their outboxes hold what they write, their readiness says Kafka is
  // away); the operator has to know why.
  if (!stopping) console.error(`The Kafka broker (pid ${broker.pid}) exited on its own: events wait in the outboxes until a broker is back (npm run kafka, or restart npm start).`);
});
void postgres?.server.exited.then(() => {
  if (!stopping) console.error(`The local Postgres server (pid ${postgres.server.pid}) exited on its own: the services on it answer 503 until it is back (restart npm start).`);
});
let whenEverySettled = () => {};
const supervised = selected.map(
  (service, index) =>
    new SupervisedService(
      {
        name: service.name,
        cwd: path.join(root, service.name),
        // A service sees its own database's URL only; mock-providers the embeddings provider decided here.
        env: {
          ...env,
          ...(service.name === 'mock-providers' ? embeddings?.env : {}),
          ...(postgres?.urls.has(service.name) ? { [postgres.urls.get(service.name)!.variable]: postgres.urls.get(service.name)!.url } : {}),
        },
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
  if (broker || postgres) {
    report(`every service has stopped: stopping ${[broker && 'the Kafka broker', postgres && 'Postgres'].filter(Boolean).join(' and ')}`);
    await Promise.all([broker?.stop(), postgres?.server.stop()]);
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
    report(`${signal} again: killing every service${broker ? ' and the Kafka broker' : ''}${postgres ? ' and Postgres' : ''} now`);
    for (const service of supervised) service.kill();
    void broker?.kill();
    void postgres?.server.kill();
  }
}
process.on('SIGINT', onSignal);
process.on('SIGTERM', onSignal);
process.on('SIGHUP', onSignal);
// Services run in their own process groups: should the launcher itself fail, take them along.
process.once('exit', () => {
  for (const service of supervised) service.kill();
  void broker?.kill();
  void postgres?.server.kill();
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
    `\nCivilDIY is ${rows.every((row) => row.state === 'ready') ? 'running' : 'partly running'} (data in ${dataDir}, Redis ${redisUrl}, events on ${describeEventTransport(transport)}${embeddings ? `, embeddings: ${embeddings.short}` : ''}):\n` +
      `${renderStatusTable(rows)}\n${entry}` +
      `Try it: see README.md "Walk-through". Check it: npm run validate. Stop: Ctrl-C.\n`,
  );
}
