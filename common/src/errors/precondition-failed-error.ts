import { AppError, type AppErrorOptions } from './app-error.ts';

/** 412: an `If-Match` version no longer matches. */
export class PreconditionFailedError extends AppError {
  constructor(message = 'The resource has changed', code = 'precondition_failed', options: AppErrorOptions = {}) {
    super(412, code, message, options);
  }
}
