/** Options shared by every {@link AppError}. */
export interface AppErrorOptions {
  /** Extra machine-readable information (for example the failing fields). Sent to the client. */
  details?: unknown;
  /** The underlying error, logged but never sent to the client. */
  cause?: unknown;
}

/**
 * The base of every error the platform maps to an HTTP answer. `code` is stable (clients and tests
 * rely on it, e.g. `orders.not_found`); `message` is for humans and may change.
 */
export class AppError extends Error {
  readonly code: string;
  readonly statusCode: number;
  readonly details?: unknown;

  constructor(statusCode: number, code: string, message: string, options: AppErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = new.target.name;
    this.statusCode = statusCode;
    this.code = code;
    if (options.details !== undefined) this.details = options.details;
  }
}
