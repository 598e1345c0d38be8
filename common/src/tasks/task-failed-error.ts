/**
 * Rejected by `TaskRef.result()` when the job failed for good (a permanent error, or its attempts
 * ran out). `code` and `message` are those of the final attempt's error (for example
 * `orders.card_declined`), so callers can branch on the code as they would on the original error.
 */
export class TaskFailedError extends Error {
  /** The final error's code (`PermanentError.code`, another error's string `code`, or `tasks.error`). */
  readonly code: string;
  /** The task name, e.g. `orders.process`. */
  readonly task: string;
  /** The BullMQ job id. */
  readonly jobId: string;
  /** How many attempts ran before the job failed. */
  readonly attemptsMade: number;

  constructor(message: string, fields: { code: string; task: string; jobId: string; attemptsMade: number }) {
    super(message);
    this.name = 'TaskFailedError';
    this.code = fields.code;
    this.task = fields.task;
    this.jobId = fields.jobId;
    this.attemptsMade = fields.attemptsMade;
  }
}
