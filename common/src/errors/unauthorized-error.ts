import { AppError, type AppErrorOptions } from './app-error.ts';

/** 401: no credentials, or credentials that do not verify. */
export class UnauthorizedError extends AppError {
  constructor(message = 'Authentication is required', code = 'unauthorized', options: AppErrorOptions = {}) {
    super(401, code, message, options);
  }
}
