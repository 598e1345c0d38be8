import type { JobsOptions } from 'bullmq';
import type { RequestContext } from '../context/index.ts';
import { ValidationError } from '../errors/index.ts';
import type { TaskDefinition, TaskInput } from './define.ts';

/**
 * What a task job carries in BullMQ (`job.data`). Anything that adds jobs by hand (a test, a
 * migration script) must use this shape; the worker validates `input` against the task's schema.
 */
export interface TaskJobData {
  /** The task input (already validated by the producer; validated again by the worker). */
  input?: unknown;
  /** Correlation of the request that caused the job. Absent for scheduled jobs: the job id is used. */
  context?: RequestContext;
  /** Set on chain steps after the first: the input is the previous step's output. */
  fromPrevious?: true;
  /** A nonce written by an idempotent enqueue, to tell whether this enqueue created the job. */
  enqueueId?: string;
}

/** The name of the custom BullMQ backoff strategy every task job uses (see `computeBackoffMs`). */
export const BACKOFF_STRATEGY = 'civildiy-jitter';

/** The error of one failed attempt, as recorded in the job's log. */
export interface AttemptRecord {
  /** 1-based attempt number (it starts again at 1 after a redrive). */
  attempt: number;
  /** The error's code (`PermanentError.code`, another error's string `code`, `tasks.timeout`, ...). */
  code: string;
  message: string;
  /** ISO timestamp of the failure. */
  at: string;
  /** Whether this failure ended the job (dead letter) rather than leading to a retry. */
  final: boolean;
  /** The worker that ran the attempt (`TaskWorkerOptions.name`); absent in records written before it was kept. */
  worker?: string;
}

const optionsCache = new WeakMap<TaskDefinition, Readonly<JobsOptions>>();

/**
 * The BullMQ job options of a task (cached per definition): attempts, the jittered backoff
 * strategy, completed jobs kept for the retention window, failed jobs kept until discarded.
 */
export function jobOptionsFor(task: TaskDefinition): Readonly<JobsOptions> {
  let options = optionsCache.get(task);
  if (options === undefined) {
    options = Object.freeze({
      attempts: task.retry.attempts,
      backoff: { type: BACKOFF_STRATEGY },
      removeOnComplete: { age: Math.max(1, Math.ceil(task.retentionMs / 1000)) },
      // Dead letters are never deleted silently: only `DeadLetters.discard` removes them.
      removeOnFail: false,
    });
    optionsCache.set(task, options);
  }
  return options;
}

/** The stable code of an error: its string `code` property when it has one, else `tasks.error`. */
export function errorCode(error: unknown): string {
  if (typeof error === 'object' && error !== null) {
    const code = (error as { code?: unknown }).code;
    if (typeof code === 'string' && code !== '') return code;
  }
  return 'tasks.error';
}

/** The message of an error, or its string form. */
export function errorMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/** Only the fields of a context that travel in job data. */
export function jobContext(context: RequestContext): RequestContext {
  const carried: RequestContext = { correlationId: context.correlationId };
  if (context.userId !== undefined) carried.userId = context.userId;
  if (context.causationId !== undefined) carried.causationId = context.causationId;
  return carried;
}

/** Parses one entry of a job's log as an attempt record (other entries give `undefined`). */
export function parseAttemptRecord(line: string): AttemptRecord | undefined {
  try {
    const value = JSON.parse(line) as Partial<AttemptRecord>;
    if (typeof value.attempt === 'number' && typeof value.code === 'string' && typeof value.message === 'string') {
      const record: AttemptRecord = { attempt: value.attempt, code: value.code, message: value.message, at: String(value.at), final: value.final === true };
      if (typeof value.worker === 'string') record.worker = value.worker;
      return record;
    }
  } catch {
    // not one of ours
  }
  return undefined;
}

/**
 * `input` validated against the task's input schema (the parsed value).
 * @throws ValidationError (code `validation_failed`) with the zod issues as `details`.
 */
export function parseTaskInput<T extends TaskDefinition>(task: T, input: TaskInput<T>): unknown {
  const parsed = task.input.safeParse(input);
  if (!parsed.success) throw new ValidationError(`Invalid input for task ${task.name}`, undefined, { details: parsed.error.issues });
  return parsed.data;
}
