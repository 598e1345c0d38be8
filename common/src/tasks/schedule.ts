import type { RequestContext } from '../context/index.ts';
import type { TaskDefinition, TaskInput } from './define.ts';
import { jobContext, jobOptionsFor, parseTaskInput, type TaskJobData } from './job-data.ts';
import type { TaskClient } from './task-client.ts';

/** Options of {@link schedule}: exactly one of `cron` and `everyMs`. */
export interface ScheduleOptions<T extends TaskDefinition> {
  /** Scheduler id, unique within the task's queue (e.g. `search.reindex-nightly`). Upserting it again replaces it. */
  id: string;
  /** A cron pattern (with seconds field optional), e.g. `0 3 * * *`. */
  cron?: string;
  /** A fixed interval in ms. */
  everyMs?: number;
  /** Time zone of `cron`. Default: the worker's (UTC in containers). */
  tz?: string;
  /** The input every run gets (validated now). */
  input: TaskInput<T>;
  /**
   * The context runs carry. Default: none, so each run's correlation id is its own job id (a
   * schedule is not part of any request).
   */
  context?: RequestContext;
}

/**
 * Creates or replaces a recurring task (a BullMQ job scheduler; Celery beat's role). Runs are
 * ordinary jobs of the task: same queue, retries, timeout and dead letters. Idempotent: every
 * instance of a service may call it at start.
 * @throws ValidationError when `input` is invalid; TypeError unless exactly one of `cron`/`everyMs` is given.
 */
export async function schedule<T extends TaskDefinition>(client: TaskClient, task: T, options: ScheduleOptions<T>): Promise<void> {
  if ((options.cron === undefined) === (options.everyMs === undefined)) {
    throw new TypeError(`Schedule "${options.id}" needs exactly one of cron and everyMs`);
  }
  const data: TaskJobData = { input: parseTaskInput(task, options.input) };
  if (options.context !== undefined) data.context = jobContext(options.context);
  const { attempts, backoff, removeOnComplete, removeOnFail } = jobOptionsFor(task);
  await client.queue(task.queue).upsertJobScheduler(
    options.id,
    options.cron === undefined ? { every: options.everyMs! } : { pattern: options.cron, ...(options.tz === undefined ? {} : { tz: options.tz }) },
    { name: task.name, data, opts: { attempts, backoff, removeOnComplete, removeOnFail } },
  );
}

/** Removes the schedule `id` of `task`'s queue (jobs already created still run). Returns whether it existed. */
export async function unschedule(client: TaskClient, task: TaskDefinition, id: string): Promise<boolean> {
  return client.queue(task.queue).removeJobScheduler(id);
}
