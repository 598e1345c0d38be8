import { AppError, TooManyRequestsError } from '@civildiy/common';

/**
 * Every answer the gateway gives itself, by status and stable code. An upstream's own answers (4xx/5xx
 * included) pass through unchanged; tokens are refused with the shared `auth.*` codes, unknown paths
 * with the shared `route_not_found`.
 */
export const GATEWAY_ERRORS = {
  invalidPath: { status: 400, code: 'gateway.invalid_path' },
  methodNotAllowed: { status: 405, code: 'gateway.method_not_allowed' },
  payloadTooLarge: { status: 413, code: 'payload_too_large' },
  rateLimited: { status: 429, code: 'gateway.rate_limited' },
  upstreamUnavailable: { status: 502, code: 'gateway.upstream_unavailable' },
  upstreamTimeout: { status: 504, code: 'gateway.upstream_timeout' },
} as const;

type GatewayError = keyof typeof GATEWAY_ERRORS;

function gatewayError(error: GatewayError, message: string, cause?: unknown): AppError {
  const { status, code } = GATEWAY_ERRORS[error];
  return new AppError(status, code, message, cause === undefined ? {} : { cause });
}

/** 400 `gateway.invalid_path`: the path has no canonical form (see `canonicalTarget`); `problem` says why. */
export function invalidPath(problem: string): AppError {
  return gatewayError('invalidPath', `The request path is not valid (${problem})`);
}

/** 405 `gateway.method_not_allowed`: the path exists, not with this method. */
export function methodNotAllowed(method: string): AppError {
  return gatewayError('methodNotAllowed', `${method} is not allowed here`);
}

/** 413 `payload_too_large` (the code every service's body limit answers with). */
export function payloadTooLarge(limitBytes: number): AppError {
  return gatewayError('payloadTooLarge', `The body is larger than ${limitBytes} bytes`);
}

/** 429 `gateway.rate_limited` with `Retry-After`. */
export function rateLimited(retryAfterSeconds: number): TooManyRequestsError {
  return new TooManyRequestsError(retryAfterSeconds, 'Too many requests; retry later', GATEWAY_ERRORS.rateLimited.code);
}

/** 502 `gateway.upstream_unavailable`: the service could not be reached (down, refused, reset, not configured). */
export function upstreamUnavailable(service: string, cause?: unknown): AppError {
  return gatewayError('upstreamUnavailable', `${service} is unavailable`, cause);
}

/** 504 `gateway.upstream_timeout`: the service did not answer in time. */
export function upstreamTimeout(service: string, cause?: unknown): AppError {
  return gatewayError('upstreamTimeout', `${service} did not answer in time`, cause);
}
