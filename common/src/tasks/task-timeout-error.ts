/**
 * A time limit ran out. Two places raise it, with code `tasks.timeout`:
 * - the worker, when an attempt runs past the task's `timeoutMs` (the attempt's `ctx.signal` is
 *   aborted with this error as its reason and the attempt is retried like any other failure);
 * - `TaskRef.result({ timeoutMs })`, when the job has not finished in time (the job keeps running).
 */
export class TaskTimeoutError extends Error {
  /** Always `tasks.timeout`. */
  readonly code = 'tasks.timeout';
  /** The limit that ran out (ms). */
  readonly timeoutMs: number;

  constructor(message: string, timeoutMs: number) {
    super(message);
    this.name = 'TaskTimeoutError';
    this.timeoutMs = timeoutMs;
  }
}
