import { AsyncLocalStorage } from 'node:async_hooks';
import { DeadlineExceededError } from '../errors/deadline-exceeded-error.ts';

/**
 * The deadline of the request being served, apart from {@link RequestContext}: the context travels
 * into jobs and events (which have deadlines of their own), a request's deadline must not.
 */
const storage = new AsyncLocalStorage<number>();

/**
 * Header carrying how many milliseconds the caller will still wait for the answer, set by the
 * gateway on every request it forwards. A budget, not a point in time, so the clocks of two machines
 * need not agree; the receiver turns it into its own deadline on arrival.
 */
export const REQUEST_TIMEOUT_HEADER = 'x-request-timeout-ms';

/** Runs `fn` with `deadline` (`Date.now()` milliseconds) as the current request's deadline. */
export function runWithDeadline<T>(deadline: number, fn: () => T): T {
  return storage.run(deadline, fn);
}

/** The current request's deadline (`Date.now()` milliseconds), or `undefined` outside a request. */
export function currentDeadline(): number | undefined {
  return storage.getStore();
}

/** Milliseconds left before the current deadline (may be ≤ 0), or `Infinity` without one. */
export function remainingMs(): number {
  const deadline = storage.getStore();
  return deadline === undefined ? Number.POSITIVE_INFINITY : deadline - Date.now();
}

/**
 * Throws {@link DeadlineExceededError} (503 `request.deadline_exceeded`) when the current request's
 * deadline has passed: its caller has given up, so work it would start or commit now is wasted at
 * best and, at worst, done for a client that was told it failed. `what` names the step in the message.
 */
export function assertBeforeDeadline(what = 'the request'): void {
  const deadline = storage.getStore();
  if (deadline !== undefined && Date.now() >= deadline) throw new DeadlineExceededError(what);
}
