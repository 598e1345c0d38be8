import type { RedisOptions } from 'ioredis';
import type { RuntimeEnv } from '../config/index.ts';
import { openDatabase, startEmbeddedVacuum, type OpenDatabase } from '../db/index.ts';
import type { EventBusAdmin, EventPublisher, EventSubscriber } from '../events/index.ts';
import { createLogger, type Logger } from '../logging/index.ts';
import { OutboxRelay, watchOutboxCommits } from '../outbox/index.ts';
import { createRedis, failFastRedisOptions, pingRedis, redisReadiness, type Redis } from '../redis/index.ts';
import { Shutdown, type ReadinessCheck } from '../service/index.ts';
import { TaskClient } from '../tasks/index.ts';
import { createEventBus, describeEventBus } from './event-bus-factory.ts';


/** A service's own database, as {@link startRuntime} opens it. */
export interface RuntimeDatabase<TSchema extends Record<string, unknown>> {
  /** `import * as schema from './db/schema.ts'`. */
  schema: TSchema;
  /** The drizzle-kit migrations folder (`fileURLToPath(new URL('./db/migrations', import.meta.url))`). */
  migrationsFolder: string;
  /** `<NAME>_DATABASE_URL`: a Postgres server; unset = embedded PGlite in `DATA_DIR/<service>`. */
  url?: string | undefined;
  extensions?: { vector?: boolean };
  /**
   * Embedded only: PGlite on its own worker thread (see `openDatabase`), for a service whose queries
   * are heavy enough to block its event loop. If the thread dies the process stops (exit 1).
   */
  thread?: boolean;
}

/** Options of {@link startRuntime}. */
export interface RuntimeOptions {
  /** The service's name: logs, metrics, the PGlite folder, the migrations table. */
  service: string;
  /** The parsed environment (the service's schema extends `baseEnv`; the gateway's leaves out the services' `HTTP_*`). */
  config: RuntimeEnv;
  /**
   * Options of the service's main Redis connection, over its defaults: fail fast
   * ({@link failFastRedisOptions}: `maxRetriesPerRequest: 1`, `commandTimeout: 2000`), since it
   * serves requests, so a request that needs Redis answers 503 within ~2 s while Redis is down or
   * stalled instead of waiting for it. BullMQ workers and the event bus's consumers use connections
   * of their own.
   */
  redisOptions?: RedisOptions;
}

/**
 * The event bus as a service uses it: one port per audience, all backed by the adapter `EVENT_BUS`
 * names (see {@link createEventBus}). The runtime owns the adapter and closes it at shutdown.
 */
export interface EventPorts {
  /** Publishes events directly (services normally publish through the outbox; the relay uses this port). */
  publisher: EventPublisher;
  /** Subscribes a consumer group to events: a service's event handlers. */
  subscriber: EventSubscriber;
  /** Consumer groups, replay and dead letters: rebuilds, metrics, operator endpoints. */
  admin: EventBusAdmin;
}

/** The shared parts every service process runs on. */
export interface Runtime {
  logger: Logger;
  /** Ordered shutdown (reverse of start); signal handlers are installed. Add the service's own parts. */
  shutdown: Shutdown;
  /**
   * The main Redis connection (the service's own keys, adding and counting jobs): it fails fast, a
   * command rejects within ~2 s while Redis is away (see {@link RuntimeOptions.redisOptions}).
   * Never give it to a BullMQ `Worker` or `QueueEvents`.
   */
  redis: Redis;
  /**
   * Enqueues tasks through {@link redis}; waits for results on a connection of its own
   * (`REDIS_RESULT_BACKEND`, else the broker), opened on first use.
   */
  tasks: TaskClient;
  /** The event bus's ports (Redis Streams by default, Kafka with `EVENT_BUS=kafka`). */
  events: EventPorts;
  /**
   * Readiness checks of what the runtime opened: `redis` (down at once while the connection is not
   * established), `events` with `EVENT_BUS=kafka` (the bus answers; on Redis Streams the `redis`
   * check covers it), and `database` when there is one.
   */
  readiness: Record<string, ReadinessCheck>;
}

/** A {@link Runtime} of a service that owns a database. */
export interface DatabaseRuntime<TSchema extends Record<string, unknown>> extends Runtime {
  /**
   * The service's database. Its outbox is delivered by a relay the runtime runs: right after every
   * commit that wrote to it, every second otherwise, and at once when Redis or the event bus is back
   * after an outage.
   */
  database: OpenDatabase<TSchema>;
}

/**
 * Starts what every service process needs, in order, each part registered for ordered shutdown:
 * logger, signal handlers, a Redis check (a clear message and exit 1 when it is unreachable), the
 * database with its migrations (when given), the Redis connection, the task client, the event bus
 * and the outbox relay. A `main.ts` then adds its consumers and its HTTP app.
 */
export async function startRuntime<TSchema extends Record<string, unknown>>(
  options: RuntimeOptions & { database: RuntimeDatabase<TSchema> },
): Promise<DatabaseRuntime<TSchema>>;
export async function startRuntime(options: RuntimeOptions): Promise<Runtime>;
export async function startRuntime<TSchema extends Record<string, unknown>>(
  options: RuntimeOptions & { database?: RuntimeDatabase<TSchema> },
): Promise<Runtime | DatabaseRuntime<TSchema>> {
  const { service, config } = options;
  const logger = createLogger({ service, level: config.LOG_LEVEL });
  const shutdown = new Shutdown(logger, config.SHUTDOWN_TIMEOUT_MS);
  shutdown.installSignalHandlers();

  try {
    await pingRedis(config.REDIS_BROKER_URL);
  } catch (error) {
    logger.fatal(
      { reason: error instanceof Error ? error.message : String(error) },
      `Redis is not reachable at ${config.REDIS_BROKER_URL}. Start one (redis-server --daemonize yes) or set REDIS_BROKER_URL.`,
    );
    process.exit(1);
  }

  let database: OpenDatabase<TSchema> | undefined;
  if (options.database) {
    database = await openDatabase({
      service,
      dataDir: config.DATA_DIR,
      migrationsFolder: options.database.migrationsFolder,
      schema: options.database.schema,
      logger,
      ...(options.database.url ? { url: options.database.url } : {}),
      ...(options.database.extensions ? { extensions: options.database.extensions } : {}),
      ...(options.database.thread
        ? {
            thread: true,
            onThreadExit: (error: Error) => {
              logger.fatal({ err: error }, 'the embedded database thread died; stopping (the data folder is intact: restart the service)');
              void shutdown.run().finally(() => process.exit(1));
            },
          }
        : {}),
    });
    shutdown.add('database', () => database!.close());
    if (database.kind === 'pglite') {
      const stopVacuum = startEmbeddedVacuum(database.db, { intervalMs: config.EMBEDDED_VACUUM_INTERVAL_MS, logger });
      shutdown.add('embedded vacuum', stopVacuum);
    }
  }

  const redis = createRedis(config.REDIS_BROKER_URL, { name: service, logger, options: { ...failFastRedisOptions(), ...options.redisOptions } });
  shutdown.add('redis', () => redis.quit());
  // Waiting for a result is a blocking read of the queue's event stream, which must not fail fast:
  // a connection of its own, opened only by a service that waits for results.
  const results = createRedis(config.REDIS_RESULT_BACKEND ?? config.REDIS_BROKER_URL, { name: `${service}:results`, logger, options: { lazyConnect: true } });
  shutdown.add('task results redis', () => (results.status === 'wait' ? results.disconnect() : results.quit()));
  const tasks = new TaskClient({ connection: redis, resultsConnection: results, prefix: config.REDIS_KEY_PREFIX, logger });
  shutdown.add('task client', () => tasks.close());
  const bus = await createEventBus(config, { service, logger });
  shutdown.add('event bus', () => bus.close());
  logger.info({ transport: config.EVENT_BUS }, `event bus: ${describeEventBus(config)}`);

  const readiness: Record<string, ReadinessCheck> = { redis: redisReadiness(redis) };
  // Bounded like every check (2 s, `checkReadiness`).
  if (config.EVENT_BUS === 'kafka') readiness.events = () => bus.ping();
  const events: EventPorts = { publisher: bus, subscriber: bus, admin: bus };
  const runtime: Runtime = { logger, shutdown, redis, tasks, events, readiness };
  if (!database) return runtime;

  readiness.database = () => database.ping();
  const relay = new OutboxRelay({ db: database.db, publisher: events.publisher, tasks, logger });
  // Whatever commits a row to the outbox (a route, a consumer, a job) has it delivered at once.
  watchOutboxCommits(database.db, () => relay.wake());
  relay.start();
  // Rows that failed while the broker was away go out once it is back, not after the rest of their backoff.
  const retryWaitingRows = () => {
    relay.retryWaitingNow().catch((error: unknown) => logger.warn({ err: error }, 'outbox: could not retry the waiting rows after the broker came back'));
  };
  // Task rows wait for Redis, event rows for the event bus (the same Redis, or Kafka).
  redis.on('ready', retryWaitingRows);
  const stopWatchingBus = bus.onRecovered(retryWaitingRows);
  shutdown.add('outbox relay', () => {
    redis.off('ready', retryWaitingRows);
    stopWatchingBus();
    return relay.stop();
  });
  return { ...runtime, database };
}
