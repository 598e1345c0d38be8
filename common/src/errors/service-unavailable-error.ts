import { AppError, type AppErrorOptions } from './app-error.ts';

/** Options of {@link ServiceUnavailableError}. */
export interface ServiceUnavailableOptions extends AppErrorOptions {
  /** Sent as `Retry-After` (whole seconds, at least 1). Default: no header. */
  retryAfterSeconds?: number;
}

/** 503: a dependency this request needs is down, or the service is overloaded; the client may retry later. */
export class ServiceUnavailableError extends AppError {
  /** The `Retry-After` header's value in seconds, when the service can tell. */
  readonly retryAfterSeconds: number | undefined;

  constructor(message = 'A dependency is unavailable', code = 'unavailable', options: ServiceUnavailableOptions = {}) {
    super(503, code, message, options);
    this.retryAfterSeconds = options.retryAfterSeconds === undefined ? undefined : Math.max(1, Math.ceil(options.retryAfterSeconds));
  }
}
