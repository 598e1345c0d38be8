import { hostname } from 'node:os';
import type { z } from 'zod';
import { ConfigError, loadConfigOrExit, type RuntimeEnv } from '../config/index.ts';
import type { Database, OpenDatabase } from '../db/index.ts';
import type { Subscription } from '../events/index.ts';
import { listen, type App } from '../service/index.ts';
import { TaskWorker, type TaskWorkerOptions } from '../tasks/index.ts';
import { registerWithConsul } from './consul-registration.ts';
import { startRuntime, type Runtime, type RuntimeDatabase } from './start-runtime.ts';

/** What a service's {@link ServiceDefinition.build} gets: the platform's ports, ready to use. */
export interface ServicePlatform<TConfig extends RuntimeEnv, TSchema extends Record<string, unknown>> extends Omit<Runtime, 'shutdown'> {
  /** The parsed environment (the service's schema). */
  config: TConfig;
  /** The service's database, when it declares one (its outbox is delivered by the runtime's relay). */
  database: [keyof TSchema] extends [never] ? undefined : OpenDatabase<TSchema>;
  /** Shorthand for `database.db`. */
  db: [keyof TSchema] extends [never] ? undefined : Database<TSchema>;
}

/** Something running in the background that stops at shutdown (a batcher, a timer, a client). */
export interface Closable {
  /** Stops it; work in progress may take up to `timeoutMs` to finish (the runtime's drain budget). */
  close(options: { timeoutMs: number }): Promise<unknown> | unknown;
}

/** The task handlers of a service: the runtime runs one task worker for them. */
export interface ServiceTasks {
  /** The queues this process consumes. */
  queues: readonly string[];
  /** Jobs run at once (default 1). */
  concurrency?: number;
  /** BullMQ's lock and stalled-job check (see `TaskWorkerOptions`). */
  lockDurationMs?: number;
  stalledIntervalMs?: number;
  /** Registers the handlers (`worker.handle(task, handler)` for each task of these queues). */
  handle(worker: TaskWorker): void;
}

/** What a service is made of, as its {@link ServiceDefinition.build} returns it. */
export interface ServiceParts {
  /** The HTTP apps and their ports (most services have one; the gateway has an operations port too). */
  http: { app: App; port: number }[];
  /** Event consumers, by a name for the logs; each is closed at shutdown. */
  consumers?: Record<string, Subscription>;
  /** Task handlers, run by one worker the runtime creates. */
  tasks?: ServiceTasks;
  /** Schedules to make sure of at start (BullMQ job schedulers live in Redis, shared by every instance). */
  schedules?: (() => Promise<unknown>)[];
  /** Background work already started (batchers, loops, extra connections), by a name for the logs. */
  background?: Record<string, Closable>;
  /**
   * Work this process repeats on its own (housekeeping of its own data), by a name for the logs:
   * `run` every `everyMs`, the first time after `everyMs`; a failure is logged and the next turn
   * comes as planned. Work all instances share belongs in `schedules` instead.
   */
  timers?: Record<string, { everyMs: number; run: () => Promise<unknown> }>;
}

/**
 * A service, declared once: its name, environment schema, database, and how its parts are built
 * from the platform. `runService` does the rest, the same way for every service: configuration,
 * logger, Redis, task client, event bus, database with migrations and outbox relay, the task worker,
 * schedules, consumers, HTTP, and one shutdown order.
 */
export interface ServiceDefinition<TEnv extends z.ZodObject, TSchema extends Record<string, unknown> = Record<never, never>> {
  /** The process's name (`order-service`): logs, metrics, the embedded database's folder. */
  name: string;
  /** The environment schema (it extends `baseEnv`); a bad variable stops the process with exit 78. */
  env: TEnv;
  /**
   * The service's own database, from its configuration; `undefined` when this configuration needs
   * none (posts-service on MongoDB): then no database is opened, no outbox relay runs, and `build`
   * gets `database` and `db` undefined whatever their type says.
   */
  database?: (config: z.infer<TEnv>) => RuntimeDatabase<TSchema> | undefined;
  /**
   * Builds the service's parts from the platform. Throw a `ConfigError` when the configuration cannot
   * work with what is found (the process exits 78, which the launcher does not restart).
   */
  build(platform: ServicePlatform<z.infer<TEnv> & RuntimeEnv, TSchema>): Promise<ServiceParts> | ServiceParts;
}

/** Declares a service (an identity function that gives the definition its types). */
export function defineService<TEnv extends z.ZodObject, TSchema extends Record<string, unknown> = Record<never, never>>(
  definition: ServiceDefinition<TEnv, TSchema>,
): ServiceDefinition<TEnv, TSchema> {
  return definition;
}

/**
 * The share of `SHUTDOWN_TIMEOUT_MS` that running jobs and background batches get to finish; the
 * rest closes the consumers, the relay, the connections and the database.
 */
const DRAIN_SHARE = 0.5;

/**
 * Runs a service process: what every `main.ts` does, in one place.
 *
 * Start order: platform (see `startRuntime`), the service's parts (`build`), the task worker, the
 * schedules and timers, then the HTTP apps and (`DISCOVERY=consul`) their Consul registration.
 * Shutdown (SIGTERM/SIGINT, or the launcher gone) runs in reverse: the instance leaves Consul, HTTP
 * stops taking requests, consumers stop, the task worker finishes its running jobs,
 * the background work its batch (each within half of `SHUTDOWN_TIMEOUT_MS`), then the relay, the
 * event bus, Redis and the database close.
 */
export async function runService<TEnv extends z.ZodObject, TSchema extends Record<string, unknown>>(definition: ServiceDefinition<TEnv, TSchema>): Promise<void> {
  const config = loadConfigOrExit(definition.env) as z.infer<TEnv> & RuntimeEnv;
  const database = definition.database?.(config);
  const runtime = database ? await startRuntime({ service: definition.name, config, database }) : await startRuntime({ service: definition.name, config });
  const { shutdown, ...ports } = runtime;
  const opened = (runtime as { database?: OpenDatabase<TSchema> }).database;
  const platform = { ...ports, config, database: opened, db: opened?.db } as ServicePlatform<typeof config, TSchema>;
  const drainMs = Math.floor(config.SHUTDOWN_TIMEOUT_MS * DRAIN_SHARE);

  let parts: ServiceParts;
  try {
    parts = await definition.build(platform);
  } catch (error) {
    // A configuration that cannot work (exit 78: the launcher does not restart it), or a failure.
    const invalid = error instanceof ConfigError;
    runtime.logger.fatal(invalid ? { problems: error.problems } : { err: error }, invalid ? error.message : 'the service could not be built');
    await shutdown.run();
    process.exit(invalid ? 78 : 1);
  }
  for (const [name, part] of Object.entries(parts.background ?? {})) {
    shutdown.add(name, () => part.close({ timeoutMs: drainMs }));
  }
  if (parts.tasks) {
    const { queues, concurrency, lockDurationMs, stalledIntervalMs } = parts.tasks;
    const options: TaskWorkerOptions = {
      connection: config.REDIS_BROKER_URL,
      prefix: config.REDIS_KEY_PREFIX,
      queues,
      logger: runtime.logger,
      name: `${definition.name}@${hostname()}:${process.pid}`,
      ...(concurrency !== undefined ? { concurrency } : {}),
      ...(lockDurationMs !== undefined ? { lockDurationMs } : {}),
      ...(stalledIntervalMs !== undefined ? { stalledIntervalMs } : {}),
    };
    const worker = new TaskWorker(options);
    parts.tasks.handle(worker);
    await worker.start();
    shutdown.add('task worker', () => worker.close({ timeoutMs: drainMs }));
    runtime.logger.info({ queues, concurrency: concurrency ?? 1 }, 'task worker consuming');
  }
  for (const schedule of parts.schedules ?? []) await schedule();
  for (const [name, timer] of Object.entries(parts.timers ?? {})) {
    const interval = setInterval(() => {
      timer.run().catch((error: unknown) => runtime.logger.warn({ err: error, timer: name }, `${name} failed; trying again in ${timer.everyMs} ms`));
    }, timer.everyMs);
    interval.unref();
    shutdown.add(name, () => clearInterval(interval));
  }
  for (const [name, subscription] of Object.entries(parts.consumers ?? {})) {
    shutdown.add(`${name} consumer`, () => subscription.close());
  }
  for (const { app, port } of parts.http) await listen(app, { port, host: config.HOST, shutdown });
  // DISCOVERY=consul: registered once listening; deregistered first at shutdown, before HTTP closes.
  registerWithConsul({ service: definition.name, config, apps: parts.http.map(({ app }) => app), logger: runtime.logger, shutdown });
}
