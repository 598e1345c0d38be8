import { AppError, type AppErrorOptions } from './app-error.ts';

/** 403: authenticated, but not allowed to touch this resource. */
export class ForbiddenError extends AppError {
  constructor(message = 'You may not do this', code = 'forbidden', options: AppErrorOptions = {}) {
    super(403, code, message, options);
  }
}
