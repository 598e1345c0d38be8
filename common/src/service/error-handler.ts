import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { hasZodFastifySchemaValidationErrors, isResponseSerializationError } from 'fastify-type-provider-zod';
import type { Socket } from 'node:net';
import { STATUS_CODES } from 'node:http';
import { isDatabaseUnavailable } from '../db/database-unavailable.ts';
import { isRedisUnavailable } from '../redis/redis-unavailable.ts';
import { AppError, ServiceUnavailableError, TooManyRequestsError } from '../errors/index.ts';

/** The body of every error answer. */
export interface ErrorBody {
  error: { code: string; message: string; details?: unknown };
}

/** Fastify's own error codes that are the client's fault, mapped to our stable codes. */
const FASTIFY_CLIENT_ERRORS: Record<string, { status: number; code: string; message: string }> = {
  FST_ERR_CTP_INVALID_JSON_BODY: { status: 400, code: 'invalid_json', message: 'The body is not valid JSON' },
  FST_ERR_CTP_EMPTY_JSON_BODY: { status: 400, code: 'invalid_json', message: 'The body is empty but declared as JSON' },
  FST_ERR_CTP_BODY_TOO_LARGE: { status: 413, code: 'payload_too_large', message: 'The body is too large' },
  FST_ERR_CTP_INVALID_MEDIA_TYPE: { status: 415, code: 'unsupported_media_type', message: 'Unsupported Content-Type' },
  FST_ERR_CTP_INVALID_CONTENT_LENGTH: { status: 400, code: 'invalid_content_length', message: 'Content-Length does not match the body' },
  FST_ERR_BAD_URL: { status: 400, code: 'invalid_url', message: 'The URL is not validly percent-encoded' },
  FST_ERR_MAX_PARAM_LENGTH: { status: 414, code: 'path_parameter_too_long', message: 'A path parameter is too long' },
};

/** A dependency that failed to answer (not refused the work): 503 with `Retry-After: 1`, nothing committed. */
const UNAVAILABLE_DEPENDENCIES: { is: (error: unknown) => boolean; code: string; message: string }[] = [
  { is: isDatabaseUnavailable, code: 'database.unavailable', message: 'The database is unavailable; retry shortly' },
  { is: isRedisUnavailable, code: 'redis.unavailable', message: 'A dependency (Redis) is unavailable; retry shortly' },
];

/** Errors Node's HTTP parser raises before Fastify sees a request (`clientError`), by `error.code`. */
const CLIENT_ERRORS: Record<string, { status: number; code: string; message: string }> = {
  HPE_HEADER_OVERFLOW: { status: 431, code: 'headers_too_large', message: 'The request headers are too large' },
  ERR_HTTP_REQUEST_TIMEOUT: { status: 408, code: 'request_timeout', message: 'The request took too long to arrive' },
  ERR_HTTP_HEADERS_TIMEOUT: { status: 408, code: 'request_timeout', message: 'The request headers took too long to arrive' },
  HPE_URI_TOO_LONG: { status: 414, code: 'url_too_long', message: 'The URL is too long' },
};

function send(reply: FastifyReply, status: number, body: ErrorBody): FastifyReply {
  return reply.status(status).type('application/json; charset=utf-8').send(body);
}

/**
 * Installs the one error handler and not-found handler every service uses, giving
 * `{ "error": { "code", "message", "details"? } }`. Unexpected errors answer 500 with no internals,
 * logged with the correlation id.
 */
export function installErrorHandling(app: FastifyInstance): void {
  app.setErrorHandler((error: FastifyError | AppError | Error, request: FastifyRequest, reply: FastifyReply) => {
    if (error instanceof AppError) {
      if (error instanceof TooManyRequestsError) reply.header('retry-after', String(error.retryAfterSeconds));
      if (error instanceof ServiceUnavailableError && error.retryAfterSeconds !== undefined) reply.header('retry-after', String(error.retryAfterSeconds));
      if (error.statusCode >= 500) request.log.error({ err: error }, error.message);
      const body: ErrorBody = { error: { code: error.code, message: error.message } };
      if (error.details !== undefined) body.error.details = error.details;
      return send(reply, error.statusCode, body);
    }
    if (hasZodFastifySchemaValidationErrors(error)) {
      const where = (error as FastifyError).validationContext ?? 'body';
      const details = error.validation.map((issue) => ({
        in: where,
        path: issue.instancePath.replace(/^\//, '').replace(/\//g, '.'),
        message: issue.message ?? 'invalid',
      }));
      return send(reply, 400, { error: { code: 'validation_failed', message: `Invalid request ${where}`, details } });
    }
    if (isResponseSerializationError(error)) {
      request.log.error({ err: error }, 'response did not match its schema');
      return send(reply, 500, { error: { code: 'internal', message: 'Internal server error' } });
    }
    const fastifyError = error as FastifyError;
    const known = fastifyError.code ? FASTIFY_CLIENT_ERRORS[fastifyError.code] : undefined;
    if (known) return send(reply, known.status, { error: { code: known.code, message: known.message } });
    const status = fastifyError.statusCode;
    if (status !== undefined && status >= 400 && status < 500) {
      return send(reply, status, { error: { code: 'bad_request', message: fastifyError.message } });
    }
    const unavailable = UNAVAILABLE_DEPENDENCIES.find((dependency) => dependency.is(error));
    if (unavailable) {
      request.log.warn({ err: error }, unavailable.message);
      reply.header('retry-after', '1');
      return send(reply, 503, { error: { code: unavailable.code, message: unavailable.message } });
    }
    request.log.error({ err: error }, 'unhandled error');
    return send(reply, 500, { error: { code: 'internal', message: 'Internal server error' } });
  });

  app.setNotFoundHandler((request, reply) =>
    send(reply, 404, { error: { code: 'route_not_found', message: `No route ${request.method} ${request.url.split('?')[0]}` } }),
  );
}

/**
 * Fastify's `frameworkErrors` option: errors its router raises before any hook runs (a path with a
 * malformed escape, an over-long path parameter) leave in the house format too.
 */
export function sendFrameworkError(error: FastifyError, _request: FastifyRequest, reply: FastifyReply): void {
  const known = error.code ? FASTIFY_CLIENT_ERRORS[error.code] : undefined;
  if (known) {
    void send(reply, known.status, { error: { code: known.code, message: known.message } });
    return;
  }
  reply.log.error({ err: error }, 'framework error');
  void send(reply, 500, { error: { code: 'internal', message: 'Internal server error' } });
}

/**
 * Fastify's `clientErrorHandler` option: what Node's HTTP parser refuses (headers over the size
 * limit, a malformed request line, a request that arrives too slowly) is answered in the house
 * format, then the connection is closed (the parser cannot go on).
 */
export function answerClientError(error: Error & { code?: string }, socket: Socket): void {
  if (error.code === 'ECONNRESET' || socket.destroyed) return;
  const known = (error.code ? CLIENT_ERRORS[error.code] : undefined) ?? { status: 400, code: 'malformed_request', message: 'The request is not valid HTTP' };
  const body = JSON.stringify({ error: { code: known.code, message: known.message } } satisfies ErrorBody);
  if (!socket.writable) {
    socket.destroy();
    return;
  }
  // Ended, not destroyed: closing a socket with unread request bytes sends a reset, which can reach
  // the client before the answer does. The rest of the request is read and dropped for a moment.
  socket.end(
    `HTTP/1.1 ${known.status} ${STATUS_CODES[known.status] ?? ''}\r\n` +
      `content-type: application/json; charset=utf-8\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`,
  );
  socket.resume();
  setTimeout(() => socket.destroy(), 2_000).unref();
}
