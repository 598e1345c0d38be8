/**
 * Thrown by a task or event handler for an outcome that retrying cannot change (bad input, a
 * business rejection). The task runtime fails the job at once and dead-letters it; the event bus
 * dead-letters the event without further deliveries.
 */
export class PermanentError extends Error {
  readonly code: string;
  readonly details?: unknown;

  constructor(message: string, code = 'permanent', options: { details?: unknown; cause?: unknown } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'PermanentError';
    this.code = code;
    if (options.details !== undefined) this.details = options.details;
  }
}

/** Whether `error` is a {@link PermanentError} (also across module copies, by name). */
export function isPermanentError(error: unknown): error is PermanentError {
  return error instanceof PermanentError || (error instanceof Error && error.name === 'PermanentError');
}
