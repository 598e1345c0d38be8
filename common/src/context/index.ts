import { AsyncLocalStorage } from 'node:async_hooks';

/**
 * What every log line, job and event carries about the request that caused it.
 * Set by the HTTP layer from `X-Request-ID`, by the task worker from job data and by
 * event consumers from the envelope, so one id follows a request through every service.
 */
export interface RequestContext {
  /** The id of the originating request (the gateway's `X-Request-ID`). */
  correlationId: string;
  /** The authenticated user, when known. */
  userId?: string;
  /** The id of the message (event or job) that caused the current work, when there is one. */
  causationId?: string;
}

const storage = new AsyncLocalStorage<RequestContext>();

/** Runs `fn` with `context` as the current context (and returns what it returns). */
export function runWithContext<T>(context: RequestContext, fn: () => T): T {
  return storage.run(context, fn);
}

/** The context of the work in progress, or `undefined` outside any request, job or event. */
export function currentContext(): RequestContext | undefined {
  return storage.getStore();
}

/**
 * Adds fields (for example the user id once a token is verified) to the current context in place.
 * Does nothing outside a context.
 */
export function enrichContext(fields: Partial<RequestContext>): void {
  const store = storage.getStore();
  if (store) Object.assign(store, fields);
}

export {
  REQUEST_TIMEOUT_HEADER,
  assertBeforeDeadline,
  currentDeadline,
  remainingMs,
  runWithDeadline,
} from './deadline.ts';
