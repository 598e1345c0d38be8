import { AppError, type AppErrorOptions } from './app-error.ts';

/** 429: too many attempts; `retryAfterSeconds` becomes the `Retry-After` header. */
export class TooManyRequestsError extends AppError {
  readonly retryAfterSeconds: number;

  constructor(retryAfterSeconds: number, message = 'Too many requests', code = 'rate_limited', options: AppErrorOptions = {}) {
    super(429, code, message, options);
    this.retryAfterSeconds = Math.max(1, Math.ceil(retryAfterSeconds));
  }
}
