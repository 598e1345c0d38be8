import { Job, type Queue } from 'bullmq';
import type { RequestContext } from '../context/index.ts';
import { parseAttemptRecord, type AttemptRecord, type TaskJobData } from './job-data.ts';
import type { TaskMetrics } from './metrics.ts';

/** A failed job as listed by {@link DeadLetters.list}. */
export interface DeadLetterSummary {
  /** The job id. */
  id: string;
  /** The task name (the job name). */
  task: string;
  queue: string;
  /** The job input as enqueued (absent on chain steps, whose input was the previous step's output). */
  input: unknown;
  context?: RequestContext;
  /** BullMQ's reason of the final failure (the final error's message). */
  failedReason: string;
  /** ISO time of the final failure. */
  failedAt: string;
  /** ISO time the job was added. */
  enqueuedAt: string;
  /** Attempts run since the job was added or last redriven. */
  attemptsMade: number;
}

/** A failed job with the error of every attempt, as returned by {@link DeadLetters.get}. */
export interface DeadLetter extends DeadLetterSummary {
  /**
   * Every recorded attempt error, oldest first (across redrives: numbering restarts at 1). A job that
   * failed without running its handler to an error (stalled too often) ends with a record built
   * from `failedReason`.
   */
  attempts: AttemptRecord[];
}

/** A page of dead letters. */
export interface DeadLetterPage {
  /** How many dead letters the queue holds. */
  total: number;
  /** Newest first. */
  items: DeadLetterSummary[];
}

/**
 * The dead letters of the task queues: jobs that failed permanently or ran out of attempts. They
 * stay in BullMQ's failed set (never removed automatically) until redriven or discarded.
 * Redrives and discards are counted in `civildiy_task_dead_letters_total`; the current number is
 * `civildiy_task_queue_depth{state="failed"}`.
 */
export class DeadLetters {
  /** @param queue - gives the BullMQ queue for a name (the client's). */
  constructor(
    private readonly queue: (name: string) => Queue,
    private readonly metrics: TaskMetrics,
  ) {}

  /** One page of the dead letters of `queue`, newest first. Defaults: offset 0, limit 50. */
  async list(queue: string, { offset = 0, limit = 50 }: { offset?: number; limit?: number } = {}): Promise<DeadLetterPage> {
    const bull = this.queue(queue);
    const [total, jobs] = await Promise.all([bull.getFailedCount(), limit > 0 ? bull.getFailed(offset, offset + limit - 1) : []]);
    return { total, items: jobs.filter((job) => job !== undefined).map((job) => summary(queue, job as Job<TaskJobData>)) };
  }

  /** The dead letter `jobId` of `queue` with every attempt's error, or `undefined` when it is not one. */
  async get(queue: string, jobId: string): Promise<DeadLetter | undefined> {
    const bull = this.queue(queue);
    const job = (await Job.fromId<TaskJobData>(bull, jobId)) as Job<TaskJobData> | undefined;
    if (job === undefined || !(await job.isFailed())) return undefined;
    const { logs } = await bull.getJobLogs(jobId, 0, -1, true);
    const attempts = logs.map(parseAttemptRecord).filter((record) => record !== undefined);
    const last = attempts.at(-1);
    if (last === undefined || !last.final) {
      attempts.push({
        attempt: job.attemptsMade,
        code: job.failedReason?.startsWith('job stalled') ? 'tasks.stalled' : 'tasks.error',
        message: job.failedReason ?? 'unknown error',
        at: new Date(job.finishedOn ?? Date.now()).toISOString(),
        final: true,
      });
    }
    return { ...summary(queue, job), attempts };
  }

  /**
   * Runs dead letter `jobId` again with fresh attempts (its attempt log is kept). Returns false when
   * it is not a dead letter (unknown id, or not failed).
   */
  async redrive(queue: string, jobId: string): Promise<boolean> {
    const bull = this.queue(queue);
    const job = await Job.fromId(bull, jobId);
    if (job === undefined) return false;
    try {
      await job.retry('failed', { resetAttemptsMade: true, resetAttemptsStarted: true });
    } catch {
      return false; // not in the failed set (any more)
    }
    this.metrics.deadLetters.inc({ queue, action: 'redriven' });
    return true;
  }

  /**
   * Redrives every dead letter of `queue` present when called (jobs failing again meanwhile are not
   * picked up twice). Returns how many were redriven.
   */
  async redriveAll(queue: string): Promise<number> {
    const ids = await this.queue(queue).getRanges(['failed'], 0, -1, true);
    let redriven = 0;
    for (let start = 0; start < ids.length; start += 100) {
      const results = await Promise.all(ids.slice(start, start + 100).map((id) => this.redrive(queue, id)));
      redriven += results.filter(Boolean).length;
    }
    return redriven;
  }

  /** Deletes dead letter `jobId` for good. Returns false when it is not a dead letter. */
  async discard(queue: string, jobId: string): Promise<boolean> {
    const job = await Job.fromId(this.queue(queue), jobId);
    if (job === undefined || !(await job.isFailed())) return false;
    await job.remove();
    this.metrics.deadLetters.inc({ queue, action: 'discarded' });
    return true;
  }
}

function summary(queue: string, job: Job<TaskJobData>): DeadLetterSummary {
  const data: Partial<TaskJobData> = typeof job.data === 'object' && job.data !== null ? job.data : {};
  const item: DeadLetterSummary = {
    id: job.id as string,
    task: job.name,
    queue,
    input: data.input,
    failedReason: job.failedReason ?? '',
    failedAt: new Date(job.finishedOn ?? job.timestamp).toISOString(),
    enqueuedAt: new Date(job.timestamp).toISOString(),
    attemptsMade: job.attemptsMade,
  };
  if (data.context !== undefined) item.context = data.context;
  return item;
}
