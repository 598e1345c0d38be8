import type { FastifyInstance } from 'fastify';
import { REQUEST_TIMEOUT_HEADER, runWithContext, runWithDeadline } from '../context/index.ts';
import { newId } from '../ids/index.ts';

/** Header carrying the correlation id from the gateway (or the client) into every service. */
export const REQUEST_ID_HEADER = 'x-request-id';

const VALID_REQUEST_ID = /^[A-Za-z0-9._:-]{1,128}$/;

/** The request id to use: the client's `X-Request-ID` when it is sane, else a new UUIDv7. */
export function requestIdFrom(header: string | string[] | undefined): string {
  const value = Array.isArray(header) ? header[0] : header;
  return value && VALID_REQUEST_ID.test(value) ? value : newId();
}

/** The caller's budget from `X-Request-Timeout-Ms`, or undefined when absent or not a number. */
function budgetFrom(header: string | string[] | undefined): number | undefined {
  const value = Array.isArray(header) ? header[0] : header;
  if (value === undefined || !/^\d{1,9}$/.test(value)) return undefined;
  return Number(value);
}

/**
 * Runs every request inside a {@link RequestContext} whose correlation id is the request id (echoed
 * in the `X-Request-ID` response header), and under a deadline: `X-Request-Timeout-Ms` from the
 * caller (the gateway sends what is left of its own timeout), at most `requestTimeoutMs`.
 */
export function installRequestContext(app: FastifyInstance, requestTimeoutMs: number): void {
  app.addHook('onRequest', (request, reply, done) => {
    reply.header(REQUEST_ID_HEADER, request.id);
    const budget = Math.min(budgetFrom(request.headers[REQUEST_TIMEOUT_HEADER]) ?? requestTimeoutMs, requestTimeoutMs);
    runWithContext({ correlationId: request.id }, () => runWithDeadline(Date.now() + budget, done));
  });
}
