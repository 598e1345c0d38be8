import type { Queue } from 'bullmq';
import type { TaskDefinition } from '@civildiy/common/tasks';
import type { QueueStatus } from './contract.ts';
import type { MetricWindow } from './metric-window.ts';

/** The window of the per-minute rates. */
const RATE_WINDOW_MS = 5 * 60_000;
/** The window of the run time percentiles. */
const TIMING_WINDOW_MS = 15 * 60_000;
/** Attempt outcomes that count as failed attempts (`civildiy_tasks_total{outcome}`). */
const FAILED_OUTCOMES = ['retried', 'failed', 'dead_lettered'];
/** Attempts whose run time counts (a deferred attempt never ran its work). */
const TIMED_OUTCOMES = ['completed', ...FAILED_OUTCOMES];

/** Options of {@link QueueStats}. */
export interface QueueStatsOptions {
  /** The queues to report (every queue of the task contracts). */
  queues: readonly string[];
  /** The tasks of the contracts (their run times are reported under their queue). */
  tasks: readonly TaskDefinition[];
  /** The BullMQ queue of a name (the task client's `queue`). */
  queue: (name: string) => Queue;
  /** The services' scraped metrics; without them (the CLI) rates and timings are null. */
  metrics?: MetricWindow;
}

/**
 * Every task queue's state: job counts, workers connected and the age of the oldest waiting job from
 * BullMQ, completed and failed attempts per minute and run time percentiles per task from the
 * workers' `civildiy_tasks_total` and `civildiy_task_duration_seconds`.
 */
export class QueueStats {
  constructor(private readonly options: QueueStatsOptions) {}

  /** The state of every queue, in contract order. */
  async read(now = Date.now()): Promise<QueueStatus[]> {
    return Promise.all(this.options.queues.map((name) => this.readQueue(name, now)));
  }

  private async readQueue(name: string, now: number): Promise<QueueStatus> {
    const queue = this.options.queue(name);
    const [counts, workers, oldest] = await Promise.all([
      queue.getJobCounts('waiting', 'prioritized', 'active', 'delayed', 'failed', 'completed'),
      queue.getWorkersCount(),
      // The wait list's tail is its oldest job (jobs are pushed on the left, taken from the right).
      queue.getJobs(['wait'], 0, 0, true),
    ]);
    const metrics = this.options.metrics;
    const rate = (outcomes: string[]) => {
      const value = metrics?.perMinute({ name: 'civildiy_tasks_total', labels: { queue: name, outcome: outcomes } }, RATE_WINDOW_MS, now);
      return value === undefined || value === null ? null : round(value);
    };
    const oldestJob = oldest[0];
    return {
      queue: name,
      counts: {
        waiting: (counts.waiting ?? 0) + (counts.prioritized ?? 0),
        active: counts.active ?? 0,
        delayed: counts.delayed ?? 0,
        failed: counts.failed ?? 0,
        completed: counts.completed ?? 0,
      },
      completedPerMinute: rate(['completed']),
      failedPerMinute: rate(FAILED_OUTCOMES),
      oldestWaitingAgeSeconds: oldestJob ? Math.max(0, Math.round((now - oldestJob.timestamp) / 1000)) : null,
      workers,
      tasks: this.options.tasks.filter((task) => task.queue === name).map((task) => this.timing(task.name, name, now)),
    };
  }

  private timing(task: string, queue: string, now: number): QueueStatus['tasks'][number] {
    const metrics = this.options.metrics;
    const query = { name: 'civildiy_task_duration_seconds', labels: { task, queue, outcome: TIMED_OUTCOMES } };
    const runs = metrics?.increaseBy({ ...query, name: 'civildiy_task_duration_seconds_count' }, 'task', TIMING_WINDOW_MS, now).get(task) ?? 0;
    const ms = (q: number) => {
      const seconds = metrics?.quantile(query, q, TIMING_WINDOW_MS, now) ?? null;
      return seconds === null ? null : round(seconds * 1000);
    };
    return { task, runs: Math.round(runs), p50Ms: ms(0.5), p99Ms: ms(0.99) };
  }
}

function round(value: number): number {
  return Math.round(value * 100) / 100;
}
