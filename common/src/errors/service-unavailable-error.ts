import { AppError, type AppErrorOptions } from './app-error.ts';

/** 503: a dependency this request needs is down; the client may retry later. */
export class ServiceUnavailableError extends AppError {
  constructor(message = 'A dependency is unavailable', code = 'unavailable', options: AppErrorOptions = {}) {
    super(503, code, message, options);
  }
}
