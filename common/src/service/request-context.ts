import type { FastifyInstance } from 'fastify';
import { runWithContext } from '../context/index.ts';
import { newId } from '../ids/index.ts';

/** Header carrying the correlation id from the gateway (or the client) into every service. */
export const REQUEST_ID_HEADER = 'x-request-id';

const VALID_REQUEST_ID = /^[A-Za-z0-9._:-]{1,128}$/;

/** The request id to use: the client's `X-Request-ID` when it is sane, else a new UUIDv7. */
export function requestIdFrom(header: string | string[] | undefined): string {
  const value = Array.isArray(header) ? header[0] : header;
  return value && VALID_REQUEST_ID.test(value) ? value : newId();
}

/**
 * Runs every request inside a {@link RequestContext} whose correlation id is the request id, and
 * echoes it in the `X-Request-ID` response header.
 */
export function installRequestContext(app: FastifyInstance): void {
  app.addHook('onRequest', (request, reply, done) => {
    reply.header(REQUEST_ID_HEADER, request.id);
    runWithContext({ correlationId: request.id }, done);
  });
}
