import { ServiceUnavailableError } from './service-unavailable-error.ts';

/**
 * 503 `request.deadline_exceeded`: the caller's deadline passed before the work could start or
 * commit, so nothing was done; retrying (with the same `Idempotency-Key` where the route takes one)
 * is safe.
 */
export class DeadlineExceededError extends ServiceUnavailableError {
  constructor(what = 'the request') {
    super(`The deadline passed before ${what} could complete; nothing was changed`, 'request.deadline_exceeded', { retryAfterSeconds: 1 });
  }
}
