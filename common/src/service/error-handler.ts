import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { hasZodFastifySchemaValidationErrors, isResponseSerializationError } from 'fastify-type-provider-zod';
import { AppError, TooManyRequestsError } from '../errors/index.ts';

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
    request.log.error({ err: error }, 'unhandled error');
    return send(reply, 500, { error: { code: 'internal', message: 'Internal server error' } });
  });

  app.setNotFoundHandler((request, reply) =>
    send(reply, 404, { error: { code: 'route_not_found', message: `No route ${request.method} ${request.url.split('?')[0]}` } }),
  );
}
