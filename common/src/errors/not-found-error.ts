import { AppError, type AppErrorOptions } from './app-error.ts';

/** 404: the resource does not exist (or is not visible to the caller). */
export class NotFoundError extends AppError {
  constructor(message = 'Not found', code = 'not_found', options: AppErrorOptions = {}) {
    super(404, code, message, options);
  }
}
