import { AppError, type AppErrorOptions } from './app-error.ts';

/** 409: a uniqueness or state conflict (duplicate email, idempotency key reused with another body). */
export class ConflictError extends AppError {
  constructor(message = 'The request conflicts with the current state', code = 'conflict', options: AppErrorOptions = {}) {
    super(409, code, message, options);
  }
}
