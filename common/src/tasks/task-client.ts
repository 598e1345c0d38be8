import { FlowProducer, Queue, type JobsOptions } from 'bullmq';
import type { Registry } from 'prom-client';
import type { z } from 'zod';
import { currentContext, type RequestContext } from '../context/index.ts';
import { ServiceUnavailableError, ValidationError } from '../errors/index.ts';
import { derivedId, newId } from '../ids/index.ts';
import { createLogger, type Logger } from '../logging/index.ts';
import { releaseConnection, resolveConnection, type OwnedConnection, type TaskConnection } from './connection.ts';
import { DeadLetters } from './dead-letters.ts';
import type { EnqueueOptions, TaskDefinition, TaskEnqueuer, TaskInput, TaskOutput, TaskRef } from './define.ts';
import { jobContext, jobOptionsFor, parseAttemptRecord, parseTaskInput, type TaskJobData } from './job-data.ts';
import { taskMetrics, DEPTH_STATES, type TaskMetrics } from './metrics.ts';
import { ResultWatcher, type JobSettlement } from './result-watcher.ts';
import { TaskFailedError } from './task-failed-error.ts';
import { TaskTimeoutError } from './task-timeout-error.ts';

/** Options of {@link TaskClient}. */
export interface TaskClientOptions {
  /**
   * The broker (`REDIS_BROKER_URL`): a URL (the client opens and closes its own connection) or an
   * ioredis instance (shared, never closed by the client).
   */
  connection: TaskConnection;
  /** BullMQ key prefix; producers and workers of one system must agree. Default `civildiy`. */
  prefix?: string;
  /** Where connection errors go. Default: a logger with service `tasks`. */
  logger?: Logger;
  /**
   * The connection used to wait for and read results (`REDIS_RESULT_BACKEND`): the event-stream
   * listener and result reads go through it, not through the enqueue connection. BullMQ keeps a
   * result in its job, so it must reach the broker's data (the same server, or a replica of it).
   * Default: `connection`.
   */
  resultsConnection?: TaskConnection;
  /** Where metrics are registered. Default: prom-client's global registry. */
  registry?: Registry;
  /** How long `TaskRef.result()` waits when no `timeoutMs` is given (ms). Default 30,000. */
  resultTimeoutMs?: number;
}

/** One item of {@link TaskClient.enqueueMany}. */
export interface EnqueueItem<T extends TaskDefinition> {
  input: TaskInput<T>;
  options?: EnqueueOptions;
}

/** The fields of a job hash that tell whether and how it finished. */
const FINISH_FIELDS = ['name', 'finishedOn', 'returnvalue', 'failedReason', 'atm'] as const;

/**
 * The producing side of the task queue (Celery's `apply_async` + `AsyncResult`), for one broker and
 * prefix. Routes each task to its queue, validates input, carries the request context, makes
 * idempotent enqueues and waits for results through the queue's event stream (no polling).
 *
 * ```ts
 * const tasks = new TaskClient({ connection: env.REDIS_BROKER_URL });
 * const ref = await tasks.enqueue(processOrder, order, { idempotencyKey: order.orderId });
 * const outcome = await ref.result({ timeoutMs: 5_000 });
 * ```
 */
export class TaskClient implements TaskEnqueuer {
  /** The BullMQ key prefix in use. */
  readonly prefix: string;
  /** Inspect, redrive and discard failed jobs. */
  readonly deadLetters: DeadLetters;
  private readonly logger: Logger;
  private readonly broker: OwnedConnection;
  private readonly results: OwnedConnection;
  private readonly metrics: TaskMetrics;
  private readonly resultTimeoutMs: number;
  private readonly queues = new Map<string, Queue>();
  private readonly watchers = new Map<string, ResultWatcher>();
  private readonly depthRemovers: (() => void)[] = [];
  private flows: FlowProducer | undefined;
  private closed = false;

  constructor(options: TaskClientOptions) {
    this.prefix = options.prefix ?? 'civildiy';
    this.logger = options.logger ?? createLogger({ service: 'tasks' });
    this.broker = resolveConnection(options.connection, 'tasks-client', this.logger);
    this.results = options.resultsConnection === undefined
      ? { redis: this.broker.redis, owned: false }
      : resolveConnection(options.resultsConnection, 'tasks-results', this.logger);
    this.metrics = taskMetrics(options.registry);
    this.resultTimeoutMs = options.resultTimeoutMs ?? 30_000;
    this.deadLetters = new DeadLetters((name) => this.queue(name), this.metrics);
  }

  /**
   * Validates `input` against the task's schema and adds a job to the task's queue. The job carries
   * `options.context` or the current context (a new correlation id outside any).
   *
   * With `idempotencyKey`, the job id is `derivedId(task.name, key)`: while that job exists (completed
   * jobs are kept for the task's `retentionMs`, failed ones until discarded) another enqueue with the
   * key adds nothing and returns a reference to it with `duplicate: true` — also when the enqueues
   * race.
   * @throws ValidationError (code `validation_failed`, zod issues in `details`) when the input is invalid.
   */
  async enqueue<T extends TaskDefinition>(task: T, input: TaskInput<T>, options?: EnqueueOptions): Promise<TaskRef<TaskOutput<T>>> {
    const data = this.jobData(task, input, options?.context);
    const queue = this.queue(task.queue);
    if (options === undefined || (options.idempotencyKey === undefined && options.delayMs === undefined && options.priority === undefined)) {
      const job = await queue.add(task.name, data, jobOptionsFor(task));
      return this.ref(task, job.id as string);
    }
    const jobOptions = this.jobOptions(task, options);
    if (jobOptions.jobId === undefined) {
      const job = await queue.add(task.name, data, jobOptions);
      return this.ref(task, job.id as string);
    }
    data.enqueueId = newId();
    await queue.add(task.name, data, jobOptions);
    const stored = await this.broker.redis.hget(queue.toKey(jobOptions.jobId), 'data');
    const duplicate = stored === null || !stored.includes(data.enqueueId);
    if (duplicate) this.logger.debug({ task: task.name, jobId: jobOptions.jobId }, 'duplicate enqueue, returning the first job');
    return this.ref(task, jobOptions.jobId, duplicate);
  }

  /**
   * Enqueues many jobs of one task in a single round trip (BullMQ `addBulk`). Every input is validated
   * first; nothing is added when one is invalid. Idempotency keys work as in {@link enqueue}.
   * @throws ValidationError naming the index of the first invalid input.
   */
  async enqueueMany<T extends TaskDefinition>(task: T, items: readonly EnqueueItem<T>[]): Promise<TaskRef<TaskOutput<T>>[]> {
    if (items.length === 0) return [];
    const queue = this.queue(task.queue);
    const jobs = items.map((item, index) => {
      let data: TaskJobData;
      try {
        data = this.jobData(task, item.input, item.options?.context);
      } catch (error) {
        if (error instanceof ValidationError) {
          throw new ValidationError(`Invalid input for task ${task.name} at index ${index}`, error.code, { details: error.details });
        }
        throw error;
      }
      const opts = item.options === undefined ? jobOptionsFor(task) : this.jobOptions(task, item.options);
      if (opts.jobId !== undefined) data.enqueueId = newId();
      return { name: task.name, data, opts: opts as JobsOptions };
    });
    const added = await queue.addBulk(jobs);
    const keyed = jobs.flatMap((job, index) => (job.opts.jobId === undefined ? [] : [index]));
    const duplicates = new Set<number>();
    if (keyed.length > 0) {
      const pipeline = this.broker.redis.pipeline();
      for (const index of keyed) pipeline.hget(queue.toKey(jobs[index]!.opts.jobId!), 'data');
      const stored = (await pipeline.exec()) ?? [];
      keyed.forEach((index, position) => {
        const value = stored[position]?.[1];
        if (typeof value !== 'string' || !value.includes(jobs[index]!.data.enqueueId!)) duplicates.add(index);
      });
    }
    return added.map((job, index) => this.ref(task, job.id as string, duplicates.has(index)));
  }

  /** A reference to an existing job of `task` (for example an id stored in a database). */
  ref<T extends TaskDefinition>(task: T, jobId: string, duplicate = false): TaskRef<TaskOutput<T>> {
    return new QueuedTaskRef<TaskOutput<T>>(this, task, jobId, duplicate);
  }

  /**
   * Waits for job `jobId` of `task` to finish: resolves with its output validated against the
   * task's `output` schema, at once when it already finished. Listens to the queue's event stream
   * (one `QueueEvents` per queue, created on first use), never polls.
   * @throws TaskFailedError when the job failed for good (code and message of its final error).
   * @throws TaskTimeoutError when it has not finished within `timeoutMs` (default: the client's
   * `resultTimeoutMs`, 30 s); the job itself goes on.
   */
  async result<T extends TaskDefinition>(task: T, jobId: string, options: { timeoutMs?: number } = {}): Promise<TaskOutput<T>> {
    if (this.closed) throw new ServiceUnavailableError('The task client is closed', 'tasks.client_closed');
    const watcher = this.watcher(task.queue);
    await watcher.ready;
    const wait = watcher.wait(jobId);
    try {
      // Registered before reading the state: a job finishing in between is seen by one or the other.
      let settlement = await this.finishedState(task, jobId);
      if (settlement === undefined) {
        const timeoutMs = options.timeoutMs ?? this.resultTimeoutMs;
        let timer: NodeJS.Timeout | undefined;
        const timeout = new Promise<never>((_, reject) => {
          timer = setTimeout(
            () => reject(new TaskTimeoutError(`Task ${task.name} (job ${jobId}) did not finish within ${timeoutMs} ms`, timeoutMs)),
            timeoutMs,
          );
        });
        try {
          settlement = await Promise.race([wait.settled, timeout]);
        } finally {
          clearTimeout(timer);
        }
      }
      return await this.toOutput(task, jobId, settlement);
    } finally {
      wait.cancel();
    }
  }

  /**
   * The BullMQ `Queue` for `name` on this client's connection and prefix (created on first use, with
   * an error listener; counted in `civildiy_task_queue_depth`). For schedules, dead letters and tools.
   */
  queue(name: string): Queue {
    let queue = this.queues.get(name);
    if (queue === undefined) {
      if (this.closed) throw new ServiceUnavailableError('The task client is closed', 'tasks.client_closed');
      queue = new Queue(name, { connection: this.broker.redis, prefix: this.prefix });
      queue.on('error', (error) => this.logger.error({ err: error, queue: name }, 'task queue error'));
      this.queues.set(name, queue);
      const counted = queue;
      this.depthRemovers.push(
        this.metrics.addDepthSource({ key: `${this.prefix}:${name}`, queue: name, counts: () => counted.getJobCounts(...DEPTH_STATES) }),
      );
    }
    return queue;
  }

  /** The BullMQ `FlowProducer` used by {@link chain} (created on first use). */
  flowProducer(): FlowProducer {
    if (this.flows === undefined) {
      if (this.closed) throw new ServiceUnavailableError('The task client is closed', 'tasks.client_closed');
      this.flows = new FlowProducer({ connection: this.broker.redis, prefix: this.prefix });
      this.flows.on('error', (error) => this.logger.error({ err: error }, 'task flow producer error'));
    }
    return this.flows;
  }

  /**
   * The job data for `input`: validated input plus the context to carry.
   * @internal used by `chain` and `schedule`.
   */
  jobData<T extends TaskDefinition>(task: T, input: TaskInput<T>, context: RequestContext | undefined): TaskJobData {
    const parsed = parseTaskInput(task, input);
    const carried = context ?? currentContext();
    return { input: parsed, context: carried === undefined ? { correlationId: newId() } : jobContext(carried) };
  }

  /** Closes queues, listeners and the connections this client opened. Pending `result()` calls reject. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const remove of this.depthRemovers) remove();
    await Promise.allSettled([
      ...[...this.watchers.values()].map((watcher) => watcher.close()),
      ...[...this.queues.values()].map((queue) => queue.close()),
      this.flows?.close(),
    ]);
    await Promise.allSettled([releaseConnection(this.results), releaseConnection(this.broker)]);
  }

  private jobOptions(task: TaskDefinition, options: EnqueueOptions): JobsOptions & { jobId?: string } {
    const jobOptions: JobsOptions = { ...jobOptionsFor(task) };
    if (options.idempotencyKey !== undefined) jobOptions.jobId = derivedId(task.name, options.idempotencyKey);
    if (options.delayMs !== undefined) jobOptions.delay = options.delayMs;
    if (options.priority !== undefined) jobOptions.priority = options.priority;
    return jobOptions;
  }

  private watcher(queue: string): ResultWatcher {
    let watcher = this.watchers.get(queue);
    if (watcher === undefined) {
      watcher = new ResultWatcher(queue, this.results.redis, this.prefix, this.logger);
      this.watchers.set(queue, watcher);
    }
    return watcher;
  }

  /** How the job finished, or `undefined` while it has not. */
  private async finishedState(task: TaskDefinition, jobId: string): Promise<JobSettlement | undefined> {
    const [name, finishedOn, returnvalue, failedReason] = await this.results.redis.hmget(`${this.prefix}:${task.queue}:${jobId}`, ...FINISH_FIELDS);
    if (name == null) {
      throw new TaskFailedError(`Job ${jobId} of task ${task.name} does not exist (never added, or removed after its retention window)`, {
        code: 'tasks.not_found',
        task: task.name,
        jobId,
        attemptsMade: 0,
      });
    }
    if (finishedOn == null) return undefined;
    if (returnvalue != null) return { kind: 'completed', value: JSON.parse(returnvalue) as unknown };
    return { kind: 'failed', failedReason: failedReason ?? 'unknown error' };
  }

  private async toOutput<T extends TaskDefinition>(task: T, jobId: string, settlement: JobSettlement): Promise<TaskOutput<T>> {
    if (settlement.kind === 'completed') {
      let parsed = task.output.safeParse(settlement.value);
      // A handler output of `undefined` is stored as null (BullMQ results are JSON).
      if (!parsed.success && settlement.value === null) parsed = task.output.safeParse(undefined);
      if (parsed.success) return parsed.data as z.output<T['output']>;
      throw new TaskFailedError(`Task ${task.name} returned an output that fails its schema`, {
        code: 'tasks.invalid_output',
        task: task.name,
        jobId,
        attemptsMade: 0,
      });
    }
    if (settlement.kind === 'closed') throw new ServiceUnavailableError('The task client closed while waiting for a result', 'tasks.client_closed');
    throw await this.failure(task, jobId, settlement.failedReason);
  }

  /**
   * The final error of a failed job, from its attempt log (BullMQ's failed reason when there is
   * none). A chain step failed because an earlier step did reports that step's error.
   */
  private async failure(task: TaskDefinition, jobId: string, failedReason: string): Promise<TaskFailedError> {
    let key = `${this.prefix}:${task.queue}:${jobId}`;
    let reason = failedReason;
    let attemptsMade: number | undefined;
    for (let depth = 0; depth < 20; depth++) {
      const [[, lines], [, made]] = (await this.results.redis.pipeline().lrange(`${key}:logs`, -10, -1).hget(key, 'atm').exec()) as [
        [unknown, string[] | null],
        [unknown, string | null],
      ];
      attemptsMade ??= Number(made ?? 0);
      const record = (lines ?? []).map(parseAttemptRecord).findLast((entry) => entry !== undefined);
      if (record?.final) return new TaskFailedError(record.message, { code: record.code, task: task.name, jobId, attemptsMade });
      // BullMQ fails a flow parent with "child <job key> failed": follow it to the step that failed.
      const child = /^child (.+) failed$/.exec(reason)?.[1];
      if (child === undefined) break;
      key = child;
      reason = (await this.results.redis.hget(child, 'failedReason')) ?? reason;
    }
    const code = reason.startsWith('job stalled') ? 'tasks.stalled' : 'tasks.error';
    return new TaskFailedError(reason, { code, task: task.name, jobId, attemptsMade: attemptsMade ?? 0 });
  }
}

class QueuedTaskRef<O> implements TaskRef<O> {
  readonly task: string;

  constructor(
    private readonly client: TaskClient,
    private readonly definition: TaskDefinition,
    readonly id: string,
    readonly duplicate: boolean,
  ) {
    this.task = definition.name;
  }

  result(options?: { timeoutMs?: number }): Promise<O> {
    return this.client.result(this.definition, this.id, options) as Promise<O>;
  }
}
