import type { z } from 'zod';
import type { RequestContext } from '../context/index.ts';

/** How a failed task is retried. */
export interface RetryPolicy {
  /** Total attempts including the first. Default 3. */
  attempts: number;
  backoff: {
    /** `exponential`: delayMs · 2^(attempt-1); `fixed`: delayMs every time. Default exponential. */
    type: 'exponential' | 'fixed';
    /** Base delay in ms. Default 1,000. */
    delayMs: number;
    /** Upper bound of one delay in ms. Default 60,000. */
    maxDelayMs?: number;
    /**
     * Fraction of the delay that is randomised: the delay is drawn uniformly from
     * `[d·(1-jitter), d]`. 0 disables jitter. Default 0.5.
     */
    jitter?: number;
  };
}

/** What {@link defineTask} takes. */
export interface TaskSpec<I extends z.ZodType, O extends z.ZodType> {
  /** `domain.verb`, e.g. `orders.process`. Unique across the system. */
  name: string;
  /** The BullMQ queue the task is routed to; a worker consumes the queues in `WORKER_QUEUES`. */
  queue: string;
  /** Schema of the job input. Input that fails it is a permanent failure (dead letter, no retry). */
  input: I;
  /** Schema of the result. A handler returning something else fails the attempt. */
  output: O;
  /** Default: 3 attempts, exponential from 1 s, jitter 0.5, at most 60 s. */
  retry?: Partial<Omit<RetryPolicy, 'backoff'>> & { backoff?: Partial<RetryPolicy['backoff']> };
  /** A running attempt is aborted (through `ctx.signal`) and retried after this long. Default 30,000. */
  timeoutMs?: number;
  /**
   * How long results and idempotency keys are kept (ms). Within it, enqueueing with the same
   * idempotency key returns the first job. Default 24 h.
   */
  retentionMs?: number;
  /** What the task does, for docs and the dashboard. */
  description?: string;
}

/** A task contract: producer and consumer both use it, never the name string. */
export interface TaskDefinition<I extends z.ZodType = z.ZodType, O extends z.ZodType = z.ZodType> {
  readonly kind: 'task';
  readonly name: string;
  readonly queue: string;
  readonly input: I;
  readonly output: O;
  readonly retry: Required<Pick<RetryPolicy, 'attempts'>> & { backoff: Required<RetryPolicy['backoff']> };
  readonly timeoutMs: number;
  readonly retentionMs: number;
  readonly description?: string;
}

export type TaskInput<T extends TaskDefinition> = z.input<T['input']>;
export type TaskOutput<T extends TaskDefinition> = z.output<T['output']>;

/** Options of an enqueue. */
export interface EnqueueOptions {
  /**
   * The same key within the task's retention window never runs twice: the job id is
   * UUIDv5(task name, key) and a repeat returns a reference to the first job.
   */
  idempotencyKey?: string;
  /** Run no earlier than this many ms from now. */
  delayMs?: number;
  /** BullMQ priority (1 = highest). */
  priority?: number;
  /**
   * The context to carry into the job (correlation id, user id, causation id). Default: the current
   * one. The outbox relay passes the context captured when the row was written.
   */
  context?: RequestContext;
}

/** A handle on an enqueued task. */
export interface TaskRef<O = unknown> {
  /** The job id (UUIDv5 of the idempotency key when one was given). */
  readonly id: string;
  readonly task: string;
  /** Whether this enqueue found an existing job with the same idempotency key. */
  readonly duplicate: boolean;
  /**
   * Waits for the job to finish, without polling. Resolves with the validated output; rejects with
   * `TaskFailedError` when the job failed for good and `TaskTimeoutError` after `timeoutMs`.
   */
  result(options?: { timeoutMs?: number }): Promise<O>;
}

/** The producing side of the task queue (implemented by `TaskClient`; used by the outbox relay). */
export interface TaskEnqueuer {
  enqueue<T extends TaskDefinition>(task: T, input: TaskInput<T>, options?: EnqueueOptions): Promise<TaskRef<TaskOutput<T>>>;
}

const registry = new Map<string, TaskDefinition>();

/** Defines (and registers) a task contract. Throws on a malformed or duplicate name. */
export function defineTask<I extends z.ZodType, O extends z.ZodType>(spec: TaskSpec<I, O>): TaskDefinition<I, O> {
  if (!/^[a-z][a-z0-9-]*(\.[a-z][a-z0-9-]*)+$/.test(spec.name)) {
    throw new TypeError(`Task name "${spec.name}" must look like domain.verb`);
  }
  if (!/^[a-z][a-z0-9-]*$/.test(spec.queue)) throw new TypeError(`Queue name "${spec.queue}" must be kebab-case`);
  if (registry.has(spec.name)) throw new TypeError(`Task "${spec.name}" is defined twice`);
  const definition: TaskDefinition<I, O> = {
    kind: 'task',
    name: spec.name,
    queue: spec.queue,
    input: spec.input,
    output: spec.output,
    retry: {
      attempts: spec.retry?.attempts ?? 3,
      backoff: {
        type: spec.retry?.backoff?.type ?? 'exponential',
        delayMs: spec.retry?.backoff?.delayMs ?? 1_000,
        maxDelayMs: spec.retry?.backoff?.maxDelayMs ?? 60_000,
        jitter: spec.retry?.backoff?.jitter ?? 0.5,
      },
    },
    timeoutMs: spec.timeoutMs ?? 30_000,
    retentionMs: spec.retentionMs ?? 24 * 60 * 60 * 1000,
    ...(spec.description === undefined ? {} : { description: spec.description }),
  };
  registry.set(spec.name, definition as TaskDefinition);
  return definition;
}

/** The registered task named `name`, if its contract module has been loaded. */
export function findTask(name: string): TaskDefinition | undefined {
  return registry.get(name);
}

/** Every registered task. */
export function registeredTasks(): TaskDefinition[] {
  return [...registry.values()];
}
