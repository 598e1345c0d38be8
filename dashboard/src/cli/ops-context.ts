import { hostname, userInfo } from 'node:os';
import type { Logger } from '@civildiy/common';
import { createRedis, failFastRedisOptions, pingRedis } from '@civildiy/common/redis';
import { createEventBus } from '@civildiy/common/runtime';
import { TaskClient } from '@civildiy/common/tasks';
import { ActivityLog, type Actor } from '../activity-log.ts';
import type { DashboardConfig } from '../config.ts';
import { contractCatalog } from '../contract-catalog.ts';
import { DeadLetterDesk } from '../dead-letter-desk.ts';
import { QueueStats } from '../queue-stats.ts';

/** What the ops CLI works with: the same dead-letter desk and queue figures as the dashboard, on connections of its own. */
export interface OpsContext {
  desk: DeadLetterDesk;
  queues: QueueStats;
  /** The OS user running the command, as recorded in the activity list. */
  actor: Actor;
  close(): Promise<void>;
}

/** The OS user (`via: 'cli'`): the login name, and as id the name at this host. */
export function osActor(): Actor {
  let username: string;
  try {
    username = userInfo().username;
  } catch {
    username = process.env.USER ?? process.env.USERNAME ?? 'unknown';
  }
  return { id: `${username}@${hostname()}`, username, via: 'cli' };
}

/**
 * Connects to Redis (the task queue, the activity list, the redriven ids) and the event bus that
 * `EVENT_BUS` names, as a service would.
 * @throws Error with a clear message when Redis does not answer.
 */
export async function openOpsContext(config: DashboardConfig, logger: Logger): Promise<OpsContext> {
  try {
    await pingRedis(config.REDIS_BROKER_URL);
  } catch (error) {
    throw new Error(`Redis is not reachable at ${config.REDIS_BROKER_URL} (${error instanceof Error ? error.message : String(error)}). Start it or set REDIS_BROKER_URL.`, {
      cause: error,
    });
  }
  const prefix = config.REDIS_KEY_PREFIX;
  const redis = createRedis(config.REDIS_BROKER_URL, { name: 'ops-cli', logger, options: failFastRedisOptions() });
  const tasks = new TaskClient({ connection: redis, prefix, logger });
  const bus = await createEventBus(config, { service: 'ops-cli', logger });
  const catalog = contractCatalog();
  const queue = (name: string) => tasks.queue(name);
  return {
    desk: new DeadLetterDesk({ catalog, tasks: tasks.deadLetters, queue, events: bus, redis, prefix, activity: new ActivityLog(redis, prefix, logger) }),
    queues: new QueueStats({ queues: catalog.queues, tasks: catalog.tasks, queue }),
    actor: osActor(),
    async close() {
      await tasks.close();
      await bus.close();
      await redis.quit();
    },
  };
}
