import { hostname } from 'node:os';
import { DelayedError, Queue, UnrecoverableError, WaitingError, Worker, type Job } from 'bullmq';
import type { Registry } from 'prom-client';
import type { z } from 'zod';
import { runWithContext, type RequestContext } from '../context/index.ts';
import { AppError, PermanentError, isPermanentError } from '../errors/index.ts';
import { createLogger, type Logger } from '../logging/index.ts';
import { computeBackoffMs } from './backoff.ts';
import { deferralOf } from './deferral.ts';
import { releaseConnection, resolveConnection, type OwnedConnection, type TaskConnection } from './connection.ts';
import { findTask, type TaskDefinition } from './define.ts';
import { errorCode, errorMessage, type AttemptRecord, type TaskJobData } from './job-data.ts';
import { DEPTH_STATES, taskMetrics, type AttemptSeries, type TaskMetrics, type TaskOutcome } from './metrics.ts';
import { TaskTimeoutError } from './task-timeout-error.ts';

/** What a handler gets besides its input. */
export interface TaskHandlerContext {
  /** A child of the worker's logger with `task`, `jobId` and `attempt` (lines also carry the correlation id). */
  readonly logger: Logger;
  /** The correlation id of the request that caused the job (the job id for scheduled runs). */
  readonly correlationId: string;
  /** The user on whose behalf the job runs, when known. */
  readonly userId?: string;
  /** The BullMQ job id (also the `causationId` of anything this attempt publishes or enqueues). */
  readonly jobId: string;
  /** 1-based number of this attempt. */
  readonly attempt: number;
  /**
   * Aborted when the attempt passes the task's `timeoutMs` (reason: `TaskTimeoutError`; checked
   * every tenth of the shortest task timeout, at most every second) or when the worker shuts down
   * past its grace period. Pass it to `fetch` and drivers; the attempt fails at the deadline even
   * if the handler ignores it (its promise is then left to settle on its own).
   */
  readonly signal: AbortSignal;
}

/** The consumer of a task: gets the validated input, returns what the `output` schema accepts. */
export type TaskHandler<T extends TaskDefinition> = (
  input: z.output<T['input']>,
  ctx: TaskHandlerContext,
) => Promise<z.input<T['output']>> | z.input<T['output']>;

/** Options of {@link TaskWorker}. */
export interface TaskWorkerOptions {
  /** The broker: a URL (the worker opens and closes its connection) or a shared ioredis instance. */
  connection: TaskConnection;
  /** BullMQ key prefix, as the producers use. Default `civildiy`. */
  prefix?: string;
  /** The queues to consume (`WORKER_QUEUES`). */
  queues: readonly string[];
  /** Jobs run in parallel per queue (`WORKER_CONCURRENCY`); a job is only taken when a slot is free. Default 10. */
  concurrency?: number;
  /** Default: a logger with service `tasks`. */
  logger?: Logger;
  /**
   * How long a running job's lock lasts without renewal (ms); the worker renews it every half of
   * this. A worker that dies loses its jobs' locks after this long. Default 30,000.
   */
  lockDurationMs?: number;
  /** How often this worker looks for jobs whose lock expired and puts them back (ms). Default 30,000. */
  stalledIntervalMs?: number;
  /** How many times a job may be recovered from a dead worker before it fails for good. Default 1. */
  maxStalledCount?: number;
  /** Where metrics are registered. Default: prom-client's global registry. */
  registry?: Registry;
  /** This worker's name in the attempt records of its jobs (dead letters show it per attempt). Default: `<hostname>:<pid>`. */
  name?: string;
}

/** Options of {@link TaskWorker.close}. */
export interface TaskWorkerCloseOptions {
  /**
   * How long running jobs may take to finish (ms). After it their `ctx.signal` is aborted and they
   * are handed back to the queue for another worker (no attempt is used up). Default 10,000.
   */
  timeoutMs?: number;
}

interface Registration {
  readonly task: TaskDefinition;
  readonly handler: TaskHandler<TaskDefinition>;
  readonly metrics: Record<TaskOutcome, AttemptSeries>;
}

/** The abort reason of attempts still running when the shutdown grace period ends. */
class WorkerShutdownError extends Error {
  readonly code = 'tasks.worker_shutdown';
  constructor() {
    super('The worker shut down before the attempt finished; the job goes back to the queue');
    this.name = 'WorkerShutdownError';
  }
}

const OUTCOMES: readonly TaskOutcome[] = ['completed', 'retried', 'failed', 'dead_lettered', 'deferred'];

/**
 * The consuming side of the task queue: one BullMQ `Worker` per queue, dispatching jobs to the
 * handlers registered with {@link handle} by task name.
 *
 * - Input is validated first; a schema failure is permanent (dead letter, no retry), as is a
 *   `PermanentError` and a job for a task with no handler here. Anything else is retried with the
 *   task's policy (jittered exponential or fixed backoff, see `computeBackoffMs`).
 * - The handler runs inside the job's request context (causation id = job id), so its log lines
 *   carry the correlation id; output is validated (a mismatch fails the attempt).
 * - An attempt past the task's `timeoutMs` is aborted through `ctx.signal` and fails with a
 *   retryable `TaskTimeoutError`.
 * - Acks late: a job is done only when its handler returns; a dead worker's jobs come back after
 *   their lock expires (BullMQ stalled-job recovery).
 * - Every failed attempt is recorded in the job's log, so dead letters show every attempt.
 *
 * ```ts
 * const worker = new TaskWorker({ connection: env.REDIS_BROKER_URL, queues: env.WORKER_QUEUES, concurrency: env.WORKER_CONCURRENCY });
 * worker.handle(processOrder, async (order, ctx) => priceAndPay(order, { signal: ctx.signal }));
 * await worker.start();
 * process.on('SIGTERM', () => void worker.close({ timeoutMs: 10_000 }));
 * ```
 */
export class TaskWorker {
  private readonly options: TaskWorkerOptions;
  private readonly prefix: string;
  private readonly logger: Logger;
  private readonly metrics: TaskMetrics;
  private readonly name: string;
  private readonly handlers = new Map<string, Registration>();
  private readonly running = new Set<Attempt>();
  private sweeper: NodeJS.Timeout | undefined;
  private sweepEveryMs = Infinity;
  private readonly workers: Worker<TaskJobData>[] = [];
  private readonly depthQueues = new Map<string, Queue>();
  private readonly depthRemovers: (() => void)[] = [];
  private connection: OwnedConnection | undefined;
  private closing: Promise<void> | undefined;

  constructor(options: TaskWorkerOptions) {
    if (options.queues.length === 0) throw new TypeError('A task worker needs at least one queue');
    this.options = options;
    this.prefix = options.prefix ?? 'civildiy';
    this.logger = options.logger ?? createLogger({ service: 'tasks' });
    this.metrics = taskMetrics(options.registry);
    this.name = options.name ?? `${hostname()}:${process.pid}`;
  }

  /**
   * Registers the handler of `task` (before or after {@link start}). A task whose queue this worker
   * does not consume is accepted (the handler simply never runs here).
   * @throws TypeError when the task already has a handler on this worker.
   */
  handle<T extends TaskDefinition>(task: T, handler: TaskHandler<T>): this {
    if (this.handlers.has(task.name)) throw new TypeError(`Task "${task.name}" already has a handler on this worker`);
    this.handlers.set(task.name, { task, handler: handler as TaskHandler<TaskDefinition>, metrics: this.outcomeMetrics(task.name, task.queue) });
    if (this.workers.length > 0) this.scheduleSweep();
    return this;
  }

  /** Starts consuming every configured queue; resolves when connected. Idempotent. */
  async start(): Promise<void> {
    if (this.closing) throw new TypeError('A closed task worker cannot start again');
    if (this.workers.length > 0) return;
    this.connection = resolveConnection(this.options.connection, 'tasks-worker', this.logger);
    const redis = this.connection.redis;
    for (const queue of this.options.queues) {
      const worker = new Worker<TaskJobData>(queue, this.process, {
        connection: redis,
        prefix: this.prefix,
        concurrency: this.options.concurrency ?? 10,
        lockDuration: this.options.lockDurationMs ?? 30_000,
        stalledInterval: this.options.stalledIntervalMs ?? 30_000,
        maxStalledCount: this.options.maxStalledCount ?? 1,
        settings: { backoffStrategy: this.backoff },
      });
      worker.on('error', (error) => this.logger.error({ err: error, queue }, 'task worker error'));
      this.workers.push(worker);
      this.depthRemovers.push(
        this.metrics.addDepthSource({ key: `${this.prefix}:${queue}`, queue, counts: () => this.depthQueue(queue).getJobCounts(...DEPTH_STATES) }),
      );
    }
    this.scheduleSweep();
    await Promise.all(this.workers.map((worker) => worker.waitUntilReady()));
    this.logger.info(
      { queues: this.options.queues, tasks: [...this.handlers.keys()], concurrency: this.options.concurrency ?? 10 },
      'task worker started',
    );
  }

  /** Attempts running right now. */
  get runningCount(): number {
    return this.running.size;
  }

  /**
   * Stops taking jobs, waits up to `timeoutMs` for running ones, then aborts the rest (their
   * `ctx.signal`) and hands their jobs back to the queue, and closes. Idempotent.
   */
  close(options: TaskWorkerCloseOptions = {}): Promise<void> {
    this.closing ??= this.shutdown(options.timeoutMs ?? 10_000);
    return this.closing;
  }

  /**
   * Deadlines are enforced by one sweep over the running attempts (every tenth of the shortest
   * task timeout, between 5 ms and 1 s) rather than a timer per job: cheaper on the hot path, and
   * an attempt is aborted at most that much after its deadline.
   */
  private scheduleSweep(): void {
    let shortest = Infinity;
    for (const { task } of this.handlers.values()) shortest = Math.min(shortest, task.timeoutMs);
    const every = Math.min(1_000, Math.max(5, Math.floor(shortest / 10)));
    if (every >= this.sweepEveryMs && this.sweeper !== undefined) return;
    clearInterval(this.sweeper);
    this.sweepEveryMs = every;
    this.sweeper = setInterval(() => {
      const now = performance.now();
      for (const attempt of this.running) {
        const state = attempt.state;
        if (state !== undefined && state.deadline <= now) {
          const { task } = state.registration;
          attempt.abort(new TaskTimeoutError(`Task ${task.name} did not finish within ${task.timeoutMs} ms`, task.timeoutMs));
        }
      }
    }, every);
    this.sweeper.unref();
  }

  private async shutdown(timeoutMs: number): Promise<void> {
    const closed = Promise.allSettled(this.workers.map((worker) => worker.close()));
    let clean = await settlesWithin(closed, timeoutMs);
    if (!clean) {
      this.logger.warn({ running: this.running.size, timeoutMs }, 'shutdown grace period over: handing running jobs back to the queue');
      for (const attempt of this.running) attempt.abort(new WorkerShutdownError());
      clean = await settlesWithin(closed, 5_000);
      if (!clean) this.logger.error('task worker did not close in time; disconnecting');
    }
    clearInterval(this.sweeper);
    for (const remove of this.depthRemovers) remove();
    await Promise.allSettled([...this.depthQueues.values()].map((queue) => queue.close()));
    if (this.connection !== undefined) {
      if (clean) await releaseConnection(this.connection);
      else if (this.connection.owned) this.connection.redis.disconnect();
    }
  }

  private depthQueue(name: string): Queue {
    let queue = this.depthQueues.get(name);
    if (queue === undefined) {
      queue = new Queue(name, { connection: this.connection!.redis, prefix: this.prefix });
      queue.on('error', (error) => this.logger.error({ err: error, queue: name }, 'task queue error'));
      this.depthQueues.set(name, queue);
    }
    return queue;
  }

  private outcomeMetrics(task: string, queue: string): Record<TaskOutcome, AttemptSeries> {
    const result = {} as Record<TaskOutcome, AttemptSeries>;
    for (const outcome of OUTCOMES) result[outcome] = this.metrics.series(task, queue, outcome);
    return result;
  }

  /** BullMQ's custom backoff strategy: the task's policy with jitter. */
  private readonly backoff = (attemptsMade: number, _type?: string, _error?: Error, job?: { name: string }): number => {
    const task = job === undefined ? undefined : (this.handlers.get(job.name)?.task ?? findTask(job.name));
    return task === undefined ? 1_000 : computeBackoffMs(task.retry.backoff, attemptsMade);
  };

  /** The BullMQ processor of every queue. */
  private readonly process = (job: Job<TaskJobData>, token?: string): Promise<unknown> => {
    const data = job.data as Partial<TaskJobData> | null;
    const carried = typeof data === 'object' && data !== null ? data.context : undefined;
    const jobId = job.id as string;
    const context: RequestContext = { correlationId: carried?.correlationId ?? jobId, causationId: jobId };
    if (carried?.userId !== undefined) context.userId = carried.userId;
    return runWithContext(context, () => this.attempt(job, token, context));
  };

  /**
   * Runs one attempt. Written with few promises on purpose: this is the hot path, and with the
   * context's AsyncLocalStorage every promise costs a little.
   */
  private attempt(job: Job<TaskJobData>, token: string | undefined, context: RequestContext): Promise<unknown> {
    const started = performance.now();
    const registration = this.handlers.get(job.name);
    const attempt = new Attempt(this.logger, job.name, context, job.attemptsMade + 1);
    if (registration === undefined) {
      const error = new PermanentError(`No handler for task "${job.name}" on this worker (queue ${job.queueName})`, 'tasks.unknown_task');
      return this.rejectWith(job, token, undefined, attempt, started, error);
    }
    const data = job.data as Partial<TaskJobData> | null;
    if (typeof data === 'object' && data !== null && data.fromPrevious === true) {
      return this.previousOutput(job).then(
        (raw) => this.run(job, token, registration, attempt, started, raw),
        (error: unknown) => this.rejectWith(job, token, registration, attempt, started, error),
      );
    }
    if (typeof data !== 'object' || data === null) {
      const error = new PermanentError('The job data is not a task payload', 'tasks.invalid_input');
      return this.rejectWith(job, token, registration, attempt, started, error);
    }
    return this.run(job, token, registration, attempt, started, data.input);
  }

  /** Validates the input, calls the handler under the task's deadline, validates the output. */
  private run(job: Job<TaskJobData>, token: string | undefined, registration: Registration, attempt: Attempt, started: number, raw: unknown): Promise<unknown> {
    const input = registration.task.input.safeParse(raw);
    if (!input.success) {
      const error = new PermanentError(`Invalid input for task ${registration.task.name}`, 'tasks.invalid_input', { details: input.error.issues });
      return this.rejectWith(job, token, registration, attempt, started, error);
    }
    return new Promise<unknown>((resolve, reject) => {
      attempt.begin(this.sink, job, token, registration, started, resolve, reject);
      let result: unknown;
      try {
        result = registration.handler(input.data, attempt);
      } catch (error) {
        attempt.settle(error, true);
        return;
      }
      if (isThenable(result)) {
        result.then(
          (value) => attempt.settle(value, false),
          (error: unknown) => attempt.settle(error, true),
        );
      } else {
        attempt.settle(result, false);
      }
    });
  }

  /** How attempts report back (one object per worker, not a closure per job). */
  private readonly sink: AttemptSink = {
    track: (attempt) => this.running.add(attempt),
    finish: (attempt, value, failed) => this.finishAttempt(attempt, value, failed),
  };

  /**
   * The end of an attempt's handler call (or its abort): validates the output and counts the
   * attempt, or records the failure, then settles the BullMQ processor.
   */
  private finishAttempt(attempt: Attempt, value: unknown, failed: boolean): void {
    const { job, token, registration, started, resolve, reject } = attempt.state!;
    this.running.delete(attempt);
    if (!failed) {
      const output = registration.task.output.safeParse(value);
      if (output.success) {
        registration.metrics.completed.record((performance.now() - started) / 1000);
        // BullMQ results are JSON: `undefined` would not survive, null does.
        resolve(output.data ?? null);
        return;
      }
      value = new AppError(500, 'tasks.invalid_output', `Task ${registration.task.name} returned an output that fails its schema`, {
        details: output.error.issues,
      });
    }
    this.failed(job, token, registration, attempt, started, value).then(reject, reject);
  }

  /** The previous chain step's output (the single child's return value). */
  private async previousOutput(job: Job<TaskJobData>): Promise<unknown> {
    const values = Object.values(await job.getChildrenValues());
    if (values.length !== 1) throw new PermanentError(`A chain step expects one previous output, found ${values.length}`, 'tasks.invalid_input');
    return values[0];
  }

  private rejectWith(
    job: Job<TaskJobData>,
    token: string | undefined,
    registration: Registration | undefined,
    attempt: Attempt,
    started: number,
    error: unknown,
  ): Promise<never> {
    return this.failed(job, token, registration, attempt, started, error).then((thrown) => Promise.reject(thrown));
  }

  /**
   * Records a failed attempt (metrics, job log, log line) and returns what to throw to BullMQ:
   * `UnrecoverableError` for permanent failures, the error itself for retryable ones.
   */
  private async failed(
    job: Job<TaskJobData>,
    token: string | undefined,
    registration: Registration | undefined,
    { attempt }: Attempt,
    started: number,
    error: unknown,
  ): Promise<Error> {
    if (error instanceof WorkerShutdownError) {
      // Not the job's fault: give it back without using up an attempt.
      try {
        await job.moveToWait(token);
        return new WaitingError();
      } catch {
        return error; // lock already lost: stalled-job recovery brings it back
      }
    }
    const deferMs = deferralOf(error);
    if (deferMs !== undefined) {
      // Not the job's fault either (e.g. an open circuit refused the call without trying): run it
      // again after the delay, without using up an attempt.
      try {
        await job.moveToDelayed(Date.now() + deferMs, token);
        (registration?.metrics.deferred ?? this.metrics.series(job.name, job.queueName, 'deferred')).record((performance.now() - started) / 1000);
        this.logger.info({ task: job.name, jobId: job.id, attempt, deferMs, code: errorCode(error) }, 'task deferred: it runs again later, the attempt not counted');
        return new DelayedError();
      } catch (moveError) {
        this.logger.warn({ err: moveError, jobId: job.id }, 'could not defer the job; counting the attempt as a failure');
      }
    }
    const permanent = isPermanentError(error) || error instanceof UnrecoverableError || (error instanceof Error && error.name === 'UnrecoverableError');
    const final = permanent || attempt >= (job.opts.attempts ?? 1);
    const outcome: TaskOutcome = permanent ? 'failed' : final ? 'dead_lettered' : 'retried';
    const series = registration?.metrics[outcome] ?? this.metrics.series(job.name, job.queueName, outcome);
    series.record((performance.now() - started) / 1000);
    const record: AttemptRecord = { attempt, code: errorCode(error), message: errorMessage(error), at: new Date().toISOString(), final, worker: this.name };
    try {
      await job.log(JSON.stringify(record));
    } catch (logError) {
      this.logger.warn({ err: logError, jobId: job.id }, 'could not record the attempt error in the job log');
    }
    const fields = { err: error, task: job.name, jobId: job.id, attempt, code: record.code, outcome };
    if (final) this.logger.error(fields, permanent ? 'task failed permanently: dead letter' : 'task ran out of attempts: dead letter');
    else this.logger.warn(fields, 'task attempt failed, will retry');
    if (permanent) return new UnrecoverableError(record.message);
    return error instanceof Error ? error : new Error(record.message);
  }
}

/** The worker side of an attempt. */
interface AttemptSink {
  track(attempt: Attempt): void;
  finish(attempt: Attempt, value: unknown, failed: boolean): void;
}

/** What an attempt needs once its handler settles. */
interface AttemptState {
  readonly sink: AttemptSink;
  readonly job: Job<TaskJobData>;
  readonly token: string | undefined;
  readonly registration: Registration;
  readonly started: number;
  readonly resolve: (value: unknown) => void;
  readonly reject: (reason: unknown) => void;
  /** `performance.now()` past which the deadline sweep aborts the attempt. */
  readonly deadline: number;
}

/**
 * One running attempt: the handler's context (child logger and abort signal are built only when
 * used: most handlers never touch them, and both cost more than the rest of a no-op attempt) and
 * the worker's handle on it (deadline, abort on shutdown). Methods rather than per-job closures:
 * this is the hot path.
 */
class Attempt implements TaskHandlerContext {
  readonly correlationId: string;
  readonly userId?: string;
  readonly jobId: string;
  /** Set while the handler runs. */
  state: AttemptState | undefined;
  private child: Logger | undefined;
  private controller: AbortController | undefined;
  private reason: Error | undefined;
  private settled = false;

  constructor(
    private readonly base: Logger,
    private readonly task: string,
    context: RequestContext,
    readonly attempt: number,
  ) {
    this.correlationId = context.correlationId;
    if (context.userId !== undefined) this.userId = context.userId;
    this.jobId = context.causationId as string;
  }

  get logger(): Logger {
    this.child ??= this.base.child({ task: this.task, jobId: this.jobId, attempt: this.attempt });
    return this.child;
  }

  get signal(): AbortSignal {
    if (this.controller === undefined) {
      this.controller = new AbortController();
      if (this.reason !== undefined) this.controller.abort(this.reason);
    }
    return this.controller.signal;
  }

  begin(
    sink: AttemptSink,
    job: Job<TaskJobData>,
    token: string | undefined,
    registration: Registration,
    started: number,
    resolve: (value: unknown) => void,
    reject: (reason: unknown) => void,
  ): void {
    this.state = { sink, job, token, registration, started, resolve, reject, deadline: started + registration.task.timeoutMs };
    sink.track(this);
  }

  /** The handler returned or threw (or the attempt was aborted): first call wins. */
  settle(value: unknown, failed: boolean): void {
    if (this.settled || this.state === undefined) return;
    this.settled = true;
    this.state.sink.finish(this, value, failed);
  }

  /** Aborts the attempt: the signal fires and the attempt fails with `reason` at once. */
  abort(reason: Error): void {
    if (this.reason !== undefined) return;
    this.reason = reason;
    this.controller?.abort(reason);
    this.settle(reason, true);
  }
}

function isThenable(value: unknown): value is PromiseLike<unknown> {
  return typeof value === 'object' && value !== null && typeof (value as { then?: unknown }).then === 'function';
}

/** Whether `promise` settles within `ms`. */
async function settlesWithin(promise: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<false>((resolve) => (timer = setTimeout(() => resolve(false), ms)));
  try {
    return await Promise.race([promise.then(() => true), timeout]);
  } finally {
    clearTimeout(timer);
  }
}
