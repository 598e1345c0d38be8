import { AppError, type AppErrorOptions } from './app-error.ts';

/** 400: the input broke a rule. `details` names the failing fields. */
export class ValidationError extends AppError {
  constructor(message = 'The request is invalid', code = 'validation_failed', options: AppErrorOptions = {}) {
    super(400, code, message, options);
  }
}
